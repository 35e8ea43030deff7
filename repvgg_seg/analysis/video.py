"""The video pipeline measured end to end: a synthetic driving video, fused
models with random weights, and for each the real pipeline writing an
overlay video, the pipeline with labels only, the model alone and a
real-time stream; results as JSON and a section of docs/benchmarks.md.

``tools/benchmark_video.py`` runs :func:`run_video_benchmark`.
"""
import json
import os
import os.path as osp
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

#: End-to-end FPS the issue asks of one H200 at 2048x1024 (overlay mp4).
GPU_TARGETS = {'pspnet_repvgg_b2-fast': 80, 'pspnet_repvgg_b1g2-fast': 120,
               'pspnet_repvgg_a0-fast': 200}
LABELS_ONLY_TARGET = 0.95  # x model-only FPS
P99_TARGET = 3.0  # x the model's median latency at batch 1
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
                     realtime_frames, codec, preset, work_dir):
    model = random_fused_model(config, device)
    predictor = SegPredictor(model, batch_size)
    with FrameSource(video) as source:
        frames = [source.read() for _ in range(batch_size)]
    result = dict(model=model_only(predictor, frames, iterations))
    out = osp.join(work_dir, f'{osp.splitext(osp.basename(config))[0]}.mp4')
    result['overlay'] = _run(video, predictor, out=out, codec=codec,
                             preset=preset)
    result['labels_only'] = _run(video, predictor)
    result['realtime'] = _run(video, predictor, out=out, codec=codec,
                              preset=preset, realtime=True,
                              max_frames=realtime_frames)
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
    if device.type == 'cuda' and name in GPU_TARGETS:
        checks['overlay_fps'] = (result['overlay']['fps'], GPU_TARGETS[name])
    if device.type == 'cpu':
        checks['overlay_vs_model'] = (result['overlay']['fps'] / model_fps,
                                      CPU_TARGET)
    return {k: dict(value=round(v, 3), target=t,
                    met=v <= t if k.startswith('p99') else v >= t)
            for k, (v, t) in checks.items()}


def _stages(report):
    return ' / '.join(f'{report["stage_ms"][k]:.2f}' for k in (
        'decode', 'copy', 'model', 'overlay', 'copy_back', 'encode'))


def markdown(results, env, command, size, num_frames):
    width, height = size
    lines = [
        f'`{command}`', '',
        f'{env["device"]}, torch {env["torch"]}, PyAV {env["pyav"]}, '
        f'{env["cpus"]} CPUs'
        + (f' (load average {env["load_average"]})'
           if 'load_average' in env else '') +
        f', {env["date"]}. Synthetic {width}x{height} '
        f'drive of {num_frames} frames, fused models with random weights, '
        f'batch 1, the real pipeline (`tools/video_demo.py`); overlay: '
        'H.264 mp4 written. Model only: the model alone on frames already '
        'on its device. Latency: frame decoded -> labels on the host; '
        '"file" reads as fast as the model takes frames, "stream" '
        '(`--realtime`) plays the file at its fps as a camera.', '',
        '| model | codec | overlay FPS | labels only FPS | model only FPS '
        '| model median ms | p50 / p99 ms file | p50 / p99 ms stream '
        '(dropped) | ms per frame: decode / copy / model / overlay / copy '
        'back / encode | targets |',
        '|' + '---|' * 10]
    for name, r in results.items():
        o, lab, m, rt = (r['overlay'], r['labels_only'], r['model'],
                         r['realtime'])
        targets = ', '.join(
            f'{k} {v["value"]:g} ({"<=" if k.startswith("p99") else ">="}'
            f'{v["target"]:g}) {"met" if v["met"] else "MISSED"}'
            for k, v in r['targets'].items())
        lines.append(
            f'| {name} | {o["codec"]} | {o["fps"]:.1f} | {lab["fps"]:.1f} | '
            f'{m["fps"]:.1f} | {m["median_latency_ms"]:.2f} | '
            f'{o["latency_ms"]["p50"]:.1f} / {o["latency_ms"]["p99"]:.1f} | '
            f'{rt["latency_ms"]["p50"]:.1f} / {rt["latency_ms"]["p99"]:.1f} '
            f'({rt["dropped"]}) | {_stages(o)} | {targets} |')
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
                        markdown_file='docs/benchmarks.md', command=None):
    """Benchmark each config; write JSON and the Markdown section (marker
    ``benchmark:video-pipeline-WxH-gpu|cpu``); return the results."""
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
            codec, preset, work_dir)
        results[name]['targets'] = check_targets(name, results[name],
                                                 device)
        print(f'{name}: ' + json.dumps(results[name]), flush=True)
    out = dict(environment=environment(device, "fp16 fast path" if device.type == "cuda" else "fp32"),
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
