"""Timing, peak memory and the facts of the device a measurement ran on."""
import contextlib
import ctypes
import datetime
import gc
import os
import platform
import time

import numpy as np
import torch

import mmseg


def time_ms(calls, device, warmup, repeat):
    """Latencies (ms) of each of ``calls`` (name -> function), called in
    turn ``repeat`` times after ``warmup`` rounds, so that a drifting load
    (shared CPUs) or clock hits every one alike: CUDA events around each
    call on a GPU, ``perf_counter`` on the CPU."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times = {name: [] for name in calls}
    if device.type != 'cuda':
        for _ in range(repeat):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - start) * 1e3)
        return times
    torch.cuda.synchronize(device)
    events = []
    for _ in range(repeat):
        for name, call in calls.items():
            start, end = (torch.cuda.Event(enable_timing=True)
                          for _ in range(2))
            start.record()
            call()
            end.record()
            events.append((name, start, end))
    torch.cuda.synchronize(device)
    for name, start, end in events:
        times[name].append(start.elapsed_time(end))
    return times


def summarize(times_ms, batch_size):
    p10, median, p90 = np.percentile(times_ms, [10, 50, 90])
    return dict(median_ms=float(median), p10_ms=float(p10),
                p90_ms=float(p90), fps=batch_size * 1e3 / float(median))


def _proc_status_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])


@contextlib.contextmanager
def peak_memory(device):
    """Memory at the peak of the block beyond what was held before it
    (activations and workspaces, not the weights), in MiB, set as
    ``result['mib']``: CUDA's allocator statistics on a GPU; on Linux CPUs
    the peak RSS (reset through ``/proc/self/clear_refs``) after glibc gave
    freed memory back (else reused memory would not count); else None."""
    result = dict(mib=None)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        yield result
        torch.cuda.synchronize(device)
        result['mib'] = (torch.cuda.max_memory_allocated(device) -
                         before) / 2**20
        return
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL('libc.so.6').malloc_trim(0)  # give freed memory back
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset the peak RSS to the current RSS
        before = _proc_status_kib('VmRSS')
    except OSError:
        yield result
        return
    yield result
    result['mib'] = (_proc_status_kib('VmHWM') - before) / 1024


def cast_context(device, fp16):
    return torch.autocast(device.type, torch.float16, enabled=fp16)


def strict_fp32():
    """cuDNN without TF32, so that fp32 results differ by rounding only."""
    return torch.backends.cudnn.flags(enabled=True, allow_tf32=False)


def peak_matmul_tflops(device, dtype=torch.float16, size=8192, repeat=10):
    """The device's achievable dense matrix rate (one large matmul), the
    ceiling that model rates are compared with."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype)
            for _ in range(2))
    median = np.median(time_ms(dict(mm=lambda: a @ b), device, 3,
                               repeat)['mm'])
    return 2 * size**3 / (median * 1e-3) / 1e12


def environment(device, precision):
    """Date, versions and device of a run, recorded with its results."""
    env = dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime(
            '%Y-%m-%d %H:%M UTC'),
        torch=torch.__version__, mmseg=mmseg.__version__,
        python=platform.python_version(), precision=precision,
        cpus=os.cpu_count(), pyav=_pyav_version())
    if device.type == 'cuda':
        env.update(
            device=torch.cuda.get_device_name(device),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            cudnn_benchmark=torch.backends.cudnn.benchmark,
            conv_tf32=torch.backends.cudnn.allow_tf32,
            fp16_matmul_tflops=round(peak_matmul_tflops(device), 1))
    else:
        env.update(device=_cpu_name(), threads=torch.get_num_threads(),
                   load_average=os.getloadavg()[0])
    return env


def _pyav_version():
    """PyAV's version (the video encoder), or None without it."""
    try:
        import av
    except ImportError:
        return None
    return av.__version__


def _cpu_name():
    with contextlib.suppress(OSError):
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return f"CPU: {line.split(':', 1)[1].strip()}"
    return f'CPU: {platform.processor()}'
