"""The video pipeline measured end to end: a synthetic driving video, fused
models with random weights, and for each the real pipeline writing an
overlay video, writing label PNGs only, writing nothing (decode and model),
the model alone and a real-time stream; a line of the targets per model,
results as JSON and a section of docs/benchmarks.md.

``tools/benchmark_video.py`` runs :func:`run_video_benchmark`.
"""
import json
import os
import os.path as osp
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np
import torch

from ..datasets import make_driving_video
from ..deploy import FrameSource, SegPredictor, fuse_model, segment_video
from ..deploy.video import open_video_writer
from ..utils.config import read_config
from ..utils.markdown import replace_section
from .candidates import build_segmentor
from .timing import environment

#: End to end with the H.264 overlay written, on one H200 at 2048x1024:
#: FPS (``fps``) or a fraction of the model's own FPS (``x_model``).
GPU_TARGETS = {'pspnet_repvgg_b2-fast': ('x_model', 0.9),
               'pspnet_repvgg_b1g2-fast': ('fps', 130),
               'pspnet_repvgg_a0-fast': ('fps', 200)}
LABELS_ONLY_TARGET = 0.95  # label PNGs written, x model-only FPS
P99_TARGET = 1.5  # stream, x the model's median latency at batch 1
CPU_TARGET = 0.8  # end to end with the overlay, x model-only FPS


def random_fused_model(config, device, calibration_shape=(2, 3, 256, 512)):
    """The config's segmentor with random weights (BN statistics measured
    on random images, so fusion folds real statistics), fused, on
    ``device``."""
    return fuse_model(build_segmentor(read_config(config), None, device,
                                      calibration_shape)).eval()


def driving_video(path, size, num_frames, fps=30.0, unique_frames=48):
    """A synthetic drive of ``num_frames`` (rendering is slow at 2 Mpixel:
    ``unique_frames`` are rendered and played back and forth); reused when
    ``path`` exists."""
    if osp.exists(path):
        return path
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rendered = make_driving_video(osp.join(tmp, 'drive.mp4'),
                                      min(unique_frames, num_frames), fps,
                                      size)
        frames = []
        with FrameSource(rendered) as source:
            while (frame := source.read()) is not None:
                frames.append(frame)
    cycle = frames + frames[-2:0:-1]
    writer = open_video_writer(path, fps, size, crf=18, preset='veryfast')
    try:
        for index in range(num_frames):
            writer.write(cycle[index % len(cycle)] if writer.pixel_format ==
                         'bgr24' else cv2.cvtColor(cycle[index % len(cycle)],
                                                   cv2.COLOR_BGR2YUV_I420))
        writer.close()
        writer.commit()
    finally:
        writer.abort()
    return path


def model_only(predictor, frames, iterations):
    """The model alone on frames already where it reads them (the GPU for
    the fast path): FPS of back-to-back calls, and the median latency of
    one call."""
    batch = frames[:predictor.batch_size]
    if predictor.fast is not None:
        device_batch = torch.from_numpy(np.stack(batch)).to(predictor.device)
        call = lambda: predictor.fast(device_batch)  # noqa: E731
        sync = torch.cuda.synchronize
    else:
        call = lambda: predictor.predict(batch)  # noqa: E731
        sync = lambda: None  # noqa: E731
    for _ in range(3):
        call()
    sync()
    latencies = []
    for _ in range(iterations):
        tic = time.perf_counter()
        call()
        sync()
        latencies.append(time.perf_counter() - tic)
    tic = time.perf_counter()
    for _ in range(iterations):
        call()
    sync()
    seconds = time.perf_counter() - tic
    return dict(fps=iterations * len(batch) / seconds,
                median_latency_ms=float(np.median(latencies) * 1000))


def _run(video, predictor, **options):
    with FrameSource(video) as source:
        report = segment_video(source, predictor, progress=False, **options)
    report.pop('queue_waits')
    return report


def benchmark_config(config, video, device, batch_size, iterations,
                     realtime_frames, codec, preset, work_dir,
                     encoder_threads=0):
    model = random_fused_model(config, device)
    predictor = SegPredictor(model, batch_size)
    with FrameSource(video) as source:
        frames = [source.read() for _ in range(batch_size)]
    result = dict(model=model_only(predictor, frames, iterations))
    name = osp.splitext(osp.basename(config))[0]
    out, labels = (osp.join(work_dir, f'{name}.mp4'),
                   osp.join(work_dir, f'{name}_labels'))
    video_options = dict(out=out, codec=codec, preset=preset,
                         encoder_threads=encoder_threads)
    result['overlay'] = _run(video, predictor, **video_options)
    shutil.rmtree(labels, ignore_errors=True)  # a new folder, each run
    result['labels_only'] = _run(video, predictor, out_labels=labels)
    shutil.rmtree(labels)  # ~100 MB of PNGs at 2048x1024
    result['no_output'] = _run(video, predictor)
    result['realtime'] = _run(video, predictor, realtime=True,
                              max_frames=realtime_frames, **video_options)
    del predictor, model
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return result


def check_targets(name, result, device):
    """Each target of the issue: value, target, met."""
    model_fps = result['model']['fps']
    # latency is a stream's (a camera, --realtime); reading a file as fast
    # as possible, frames also wait for the ones decoded before them
    checks = dict(labels_only=(result['labels_only']['fps'] / model_fps,
                               LABELS_ONLY_TARGET),
                  p99_stream=(result['realtime']['latency_ms']['p99'] /
                              result['model']['median_latency_ms'],
                              P99_TARGET))
    kind, target = (GPU_TARGETS.get(name, ('x_model', None))
                    if device.type == 'cuda' else ('x_model', CPU_TARGET))
    if kind == 'fps':
        checks['overlay_fps'] = (result['overlay']['fps'], target)
    elif target is not None:
        checks['overlay_vs_model'] = (result['overlay']['fps'] / model_fps,
                                      target)
    return {k: dict(value=round(v, 3), target=t,
                    met=v <= t if k.startswith('p99') else v >= t)
            for k, (v, t) in checks.items()}


STAGE_COLUMNS = ('decode', 'copy', 'model', 'overlay', 'copy_back', 'encode',
                 'labels', 'gc')


def _stages(report):
    return ' / '.join(f'{report["stage_ms"].get(k, 0):.2f}'
                      for k in STAGE_COLUMNS)


def _targets(result):
    return ', '.join(
        f'{k} {v["value"]:g} ({"<=" if k.startswith("p99") else ">="}'
        f'{v["target"]:g}) {"met" if v["met"] else "MISSED"}'
        for k, v in result['targets'].items())


def summary(name, result):
    """One line of what the targets ask: end-to-end FPS with the overlay,
    the model's own, the encoder's ms a frame, the ratios and the stream's
    p99 latency."""
    model, overlay = result['model'], result['overlay']
    labels, stream = result['labels_only'], result['realtime']
    return (
        f'{name}: overlay {overlay["fps"]:.1f} FPS end to end = '
        f'{overlay["fps"] / model["fps"]:.3f}x the model ({model["fps"]:.1f}'
        f' FPS), encode {overlay["stage_ms"]["encode"]:.2f} ms/frame; label '
        f'PNGs only {labels["fps"]:.1f} FPS = '
        f'{labels["fps"] / model["fps"]:.3f}x; nothing written '
        f'{result["no_output"]["fps"]:.1f} FPS; stream p99 '
        f'{stream["latency_ms"]["p99"]:.2f} ms = '
        f'{stream["latency_ms"]["p99"] / model["median_latency_ms"]:.2f}x '
        f'the model\'s median {model["median_latency_ms"]:.2f} ms; targets: '
        f'{_targets(result)}')


def markdown(results, env, command, size, num_frames):
    width, height = size
    lines = [
        f'`{command}`', '',
        f'{env["device"]}, torch {env["torch"]}, PyAV {env["pyav"]}, '
        f'{env["cpus"]} CPUs'
        + (f' (load average {env["load_average"]})'
           if 'load_average' in env else '') +
        f', encoder threads {env.get("encoder_threads") or "auto"}' +
        f', {env["date"]}. Synthetic {width}x{height} '
        f'drive of {num_frames} frames, fused models with random weights, '
        f'batch 1, the real pipeline (`tools/video_demo.py`); overlay: '
        'H.264 mp4 written; labels only: label PNGs written; nothing '
        'written: decode and model. Model only: the model alone on frames '
        'already on its device. Latency: frame decoded -> labels on the '
        'host; "file" reads as fast as the model takes frames, "stream" '
        '(`--realtime`, overlay written) plays the file at its fps as a '
        'camera. Stage times are per frame, each in its own thread (labels: '
        'the PNG writers\' sum; gc: garbage collections, all threads '
        'stopped).', '',
        '| model | codec | overlay FPS | labels only FPS | nothing written '
        'FPS | model only FPS | model median ms | p50 / p99 ms file | '
        'p50 / p99 ms stream (dropped) | overlay run, ms per frame: '
        f'{" / ".join(STAGE_COLUMNS).replace("_", " ")} | targets |',
        '|' + '---|' * 11]
    for name, r in results.items():
        o, lab, m, rt = (r['overlay'], r['labels_only'], r['model'],
                         r['realtime'])
        lines.append(
            f'| {name} | {o["codec"]} | {o["fps"]:.1f} | {lab["fps"]:.1f} | '
            f'{r["no_output"]["fps"]:.1f} | {m["fps"]:.1f} | '
            f'{m["median_latency_ms"]:.2f} | '
            f'{o["latency_ms"]["p50"]:.1f} / {o["latency_ms"]["p99"]:.1f} | '
            f'{rt["latency_ms"]["p50"]:.1f} / {rt["latency_ms"]["p99"]:.1f} '
            f'({rt["dropped"]}) | {_stages(o)} | {_targets(r)} |')
    encode_bound = {n: 1000 / r['overlay']['stage_ms']['encode']
                    for n, r in results.items()
                    if r['overlay']['stage_ms']['encode']}
    if encode_bound:
        lines += ['', 'Encoder thread alone at most: ' + ', '.join(
            f'{n} {fps:.0f} FPS' for n, fps in encode_bound.items()) +
            ' (1000 / its ms per frame): where that is near the overlay '
            'FPS, the run is bound by the encoder.']
    return '\n'.join(lines)


def run_video_benchmark(configs, device='cuda:0', size=(2048, 1024),
                        num_frames=240, fps=30.0, batch_size=1,
                        iterations=50, realtime_frames=120, codec='auto',
                        preset='ultrafast', work_dir='work_dirs/video_bench',
                        video=None, out_json=None,
                        markdown_file='docs/benchmarks.md', command=None,
                        encoder_threads=0):
    """Benchmark each config; print a line of its targets; write JSON and
    the Markdown section (marker ``benchmark:video-pipeline-WxH-gpu|cpu``);
    return the results."""
    device = torch.device(device)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
    width, height = size
    video = video or osp.join(work_dir,
                              f'drive_{width}x{height}_{num_frames}.mp4')
    driving_video(video, size, num_frames, fps)
    results = {}
    for config in configs:
        name = osp.splitext(osp.basename(config))[0]
        results[name] = benchmark_config(
            config, video, device, batch_size, iterations, realtime_frames,
            codec, preset, work_dir, encoder_threads)
        results[name]['targets'] = check_targets(name, results[name],
                                                 device)
        print(f'{name}: ' + json.dumps(results[name]), flush=True)
    print()
    for name, result in results.items():
        print(summary(name, result), flush=True)
    precision = 'fp16 fast path' if device.type == 'cuda' else 'fp32'
    out = dict(environment=dict(environment(device, precision),
                                encoder_threads=encoder_threads),
               command=command or ' '.join(['python'] + sys.argv),
               size=list(size), num_frames=num_frames, results=results)
    out_json = out_json or osp.join(work_dir, f'video_{device.type}.json')
    os.makedirs(osp.dirname(osp.abspath(out_json)), exist_ok=True)
    with open(out_json, 'w') as f:
        json.dump(out, f, indent=1)
    if markdown_file:
        record(out, markdown_file)
    return out


def record(out, markdown_file):
    """The section ``benchmark:video-pipeline-WxH-gpu|cpu`` of
    ``markdown_file`` from a benchmark's JSON."""
    env, (width, height) = out['environment'], out['size']
    kind = 'cpu' if env['device'].startswith('CPU') else 'gpu'
    tag = f'video-pipeline-{width}x{height}-{kind}'
    replace_section(markdown_file, f'<!-- benchmark:{tag}:start -->',
                    f'<!-- benchmark:{tag}:end -->',
                    f'## Video pipeline, {width}x{height}, {env["device"]}'
                    '\n\n' + markdown(out['results'], env, out['command'],
                                       out['size'], out['num_frames']))
