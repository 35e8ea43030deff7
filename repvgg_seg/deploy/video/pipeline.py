"""Segment a video with every stage overlapping the others.

decode (thread, into a slot's pinned buffer) -> model (this thread; on a
GPU it only queues work: copy in, fast path, overlay, copy back, each on
its stream) -> collect (thread: waits for the batch, stamps its latency,
paints on the CPU path) -> encode (thread) and label PNGs (threads).

A fixed pool of batch slots travels through the stages, so memory stays
flat and no stage runs more than the pool ahead. In real-time mode the
decoder never waits: when no slot is free it drops the oldest decoded
batch (or the new frame), so the latency stays bounded.

Python's garbage collector is kept off the objects that exist when the run
starts (``gc.freeze``): in a process holding torch, MMSeg and a compiled
model a full collection scans ~300k objects, 0.1-0.3 s with the GIL held,
every stage stalled (``stage_ms['gc']`` reports what collections cost).
"""
import gc
import os
import queue
import threading
import time
from contextlib import contextmanager

import cv2
import numpy as np
from mmengine.utils import ProgressBar

from .overlay import draw_text_bgr, draw_text_yuv420
from .writers import write_label_png

#: Batch slots in flight (decoded, on the GPU, being encoded).
NUM_SLOTS = 8
#: Decoded batches that may wait for the model in real-time mode.
REALTIME_QUEUE = 1
#: Decoded batches that may wait for the model when reading a file: two,
#: so that a slow decode (a busy core) does not leave the GPU idle.
DECODE_AHEAD = 2
#: Batches submitted to the model and not yet collected: two keep the GPU
#: busy (the next is queued when one ends); more would only add latency.
MAX_IN_FLIGHT = 2
#: Threads encoding label PNGs (OpenCV lets go of the GIL): one takes 3-14
#: ms a 2048x1024 frame (smooth to noisy labels), so 300 FPS needs 1-4
#: cores (3 fixed writers were the ceiling).
LABEL_WRITERS = max(3, min(8, os.cpu_count() or 1))
STAGES = ('decode', 'copy', 'model', 'overlay', 'copy_back', 'encode',
          'labels', 'gc')
_END = object()


@contextmanager
def collector_off_old_objects(times):
    """Freeze the objects alive now out of the garbage collector's scans
    for the block, and add the time its collections take to
    ``times['gc']``."""
    started = []

    def clock(phase, info):
        if phase == 'start':
            started.append(time.perf_counter())
        elif started:
            times['gc'] += time.perf_counter() - started.pop()

    gc.freeze()
    gc.callbacks.append(clock)
    try:
        yield
    finally:
        gc.callbacks.remove(clock)
        gc.unfreeze()


class Slot:
    """One batch of frames and its buffers, reused for batch after batch."""

    def __init__(self, buffers):
        self.buffers, self.count, self.first = buffers, 0, 0
        self.decoded_at, self.decode_seconds = [], 0.0
        self.enqueued_after = 0  # frames decoded when it was queued


class DecodedQueue:
    """Decoded batches waiting for the model, and the count of frames
    decoded, under one lock: the frames a batch waited for are counted
    exactly, and real-time eviction of old batches is atomic."""

    def __init__(self):
        self._cond, self._items, self.count = threading.Condition(), [], 0

    def count_frame(self):
        with self._cond:
            self.count += 1

    def put(self, item, keep=None):
        """Queue ``item``; with ``keep``, first evict (and return) the
        oldest batches so that at most ``keep`` wait."""
        with self._cond:
            evicted = []
            while keep is not None and len(self._items) >= keep:
                evicted.append(self._items.pop(0))
            if item is not _END:
                item.enqueued_after = self.count
            self._items.append(item)
            self._cond.notify_all()
            return evicted

    def wait_below(self, size, stop):
        """Block while ``size`` or more batches wait."""
        with self._cond:
            while len(self._items) >= size and not stop.is_set():
                self._cond.wait(0.1)

    def take_oldest(self):
        with self._cond:
            if self._items and self._items[0] is not _END:
                return self._items.pop(0)
            return None

    def get(self, stop):
        """``(batch, frames decoded while it waited)``; ``_END`` once
        ``stop`` is set."""
        with self._cond:
            while not self._items:
                if stop.is_set():
                    return _END, 0
                self._cond.wait(0.1)
            item = self._items.pop(0)
            self._cond.notify_all()
            return item, (0 if item is _END else
                          self.count - item.enqueued_after)


class _Worker(threading.Thread):
    """A daemon thread that records its error and stops the others."""

    def __init__(self, target, stop, errors, name):
        super().__init__(daemon=True, name=name)
        self._target_fn, self._stop_all, self._errors = target, stop, errors

    def run(self):
        try:
            self._target_fn()
        except BaseException as exc:  # handed to the main thread
            self._errors.append(exc)
            self._stop_all.set()


def _get(q, stop):
    """The next item, or _END once ``stop`` is set (never blocks forever on
    a stage that died)."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            pass
    return _END


class VideoPipeline:
    """Runs ``source`` through ``backend`` (:class:`~.host.HostBackend` or
    :class:`~.gpu.CUDABackend`) into ``writer`` (or no video) and label
    PNGs in ``labels_dir``; :meth:`run` returns the report."""

    def __init__(self, source, backend, batch_size, writer=None,
                 labels_dir=None, show_fps=False, window=None,
                 max_frames=None, realtime=False, progress=True):
        self.source, self.backend, self.writer = source, backend, writer
        self.batch_size, self.labels_dir = batch_size, labels_dir
        self.show_fps, self.window = show_fps, window
        self.max_frames, self.realtime = max_frames, realtime
        self.progress = progress
        self.stop, self.end_of_stream = threading.Event(), threading.Event()
        self.errors = []
        self.free, self.submitted, self.encode_q = (
            queue.Queue() for _ in range(3))
        self.decoded = DecodedQueue()
        self.labels_q = queue.Queue(NUM_SLOTS * batch_size)
        for _ in range(NUM_SLOTS):
            self.free.put(Slot(backend.new_buffers(batch_size, source.size)))
        self.dropped = 0
        self.labels_lock = threading.Lock()
        self.in_flight = threading.Semaphore(MAX_IN_FLIGHT)
        self.times = dict.fromkeys(STAGES, 0.0)
        self.latencies, self.queue_waits = [], []
        self.frames = 0

    # decode ----------------------------------------------------------
    def _slot_for_realtime(self):
        """A free slot, else the oldest decoded batch (dropped), else
        None (drop the new frame)."""
        try:
            return self.free.get_nowait()
        except queue.Empty:
            pass
        slot = self.decoded.take_oldest()
        if slot is not None:
            self.dropped += slot.count
        return slot

    def _pace(self, start):
        """A file in real-time mode plays at its frame rate, as a camera
        (:class:`FrameSource` keeps it in ``FPS_RANGE``: at most 10 s a
        frame, and a stopped run wakes the wait)."""
        if self.realtime and not self.source.is_camera:
            delay = (start + self.decoded.count / self.source.fps -
                     time.perf_counter())
            if delay > 0:
                self.stop.wait(delay)

    def _slot_to_read_into(self):
        """The slot for the next batch, taken before its first frame is
        decoded (into it). Reading files, wait for a free one and for the
        model to catch up to :data:`DECODE_AHEAD` batches; in real-time
        mode never wait: None when no slot is free now (one is found after
        the frame came, by :meth:`_slot_for_realtime`)."""
        if self.realtime:
            try:
                return self.free.get_nowait()
            except queue.Empty:
                return None
        self.decoded.wait_below(DECODE_AHEAD, self.stop)
        return _get(self.free, self.stop)

    def _read(self):
        start, slot = time.perf_counter(), None
        while not (self.stop.is_set() or self.end_of_stream.is_set()
                   or self.decoded.count == self.max_frames):
            if slot is None:
                slot = self._start_batch(self._slot_to_read_into())
                if slot is _END:
                    return
            self._pace(start)
            into = (None if slot is None else
                    slot.buffers['host_frames'][slot.count])
            tic = time.perf_counter()
            frame = self.source.read(into)
            decoded = time.perf_counter()
            if frame is None:
                break
            if slot is None:
                slot = self._start_batch(self._slot_for_realtime())
                if slot is None:  # real time, all slots busy
                    self.dropped += 1
                    self.decoded.count_frame()
                    continue
            if frame is not into:  # decoded elsewhere
                slot.buffers['host_frames'][slot.count] = frame
            slot.count += 1
            slot.decoded_at.append(decoded)
            slot.decode_seconds += decoded - tic
            self.decoded.count_frame()
            if slot.count == self.batch_size:
                self._queue_decoded(slot)
                slot = None
        if slot is not None and slot.count:
            self._queue_decoded(slot)
        self.decoded.put(_END)

    def _start_batch(self, slot):
        if slot is not None and slot is not _END:
            slot.count, slot.first = 0, self.decoded.count
            slot.decoded_at, slot.decode_seconds = [], 0.0
        return slot

    def _queue_decoded(self, slot):
        for old in self.decoded.put(
                slot, REALTIME_QUEUE if self.realtime else None):
            self.dropped += old.count
            self.free.put(old)

    # collect, encode, label PNGs -------------------------------------
    def _collect(self):
        bar = ProgressBar(self.source.num_frames if not self.max_frames else
                          min(self.source.num_frames or self.max_frames,
                              self.max_frames)) if self.progress else None
        while (slot := _get(self.submitted, self.stop)) is not _END:
            labels, video, times = self.backend.finish(slot)
            self.in_flight.release()
            done = time.perf_counter()
            self.latencies += [done - t for t in slot.decoded_at]
            self.times['decode'] += slot.decode_seconds
            for stage, seconds in times.items():
                self.times[stage] += seconds
            if self.labels_dir:
                for offset, label in enumerate(labels):
                    self._put_label(slot.first + offset, label.copy())
            self.frames += slot.count
            if self.writer is not None or self.window is not None:
                slot.video = video
                self.encode_q.put(slot)
            else:
                self.free.put(slot)
            if bar is not None:
                for _ in range(slot.count):
                    bar.update()
        self.encode_q.put(_END)
        for _ in range(LABEL_WRITERS):
            self._put_label(None, None)

    def _put_label(self, index, labels):
        while not self.stop.is_set():
            try:
                return self.labels_q.put((index, labels), timeout=0.1)
            except queue.Full:
                pass

    def _write_labels(self):
        while (item := _get(self.labels_q, self.stop)) is not _END:
            index, labels = item
            if index is None:
                return
            tic = time.perf_counter()
            write_label_png(f'{self.labels_dir}/{index:06d}.png', labels)
            with self.labels_lock:  # writers in parallel: a sum of them
                self.times['labels'] += time.perf_counter() - tic

    def overlay_text(self):
        """The live numbers drawn by ``show_fps``."""
        seconds = time.perf_counter() - self.started
        latency = self.latencies[-1] * 1000 if self.latencies else 0
        return f'{self.frames / seconds:.1f} FPS  {latency:.0f} ms'

    def _encode(self):
        while (slot := _get(self.encode_q, self.stop)) is not _END:
            tic = time.perf_counter()
            for frame in slot.video:
                if self.show_fps:
                    draw = (draw_text_yuv420 if frame.ndim == 2 else
                            draw_text_bgr)
                    draw(frame, self.overlay_text())
                if self.writer is not None:
                    self.writer.write(frame)
                if self.window is not None:
                    cv2.imshow(self.window, frame)
                    if cv2.waitKey(1) & 0xFF == ord('q'):
                        self.end_of_stream.set()
            self.free.put(slot)
            self.times['encode'] += time.perf_counter() - tic
        if self.writer is not None:
            tic = time.perf_counter()
            self.writer.close()  # flushes: raises if the file is not whole
            self.times['encode'] += time.perf_counter() - tic

    # model (this thread) ---------------------------------------------
    def _model_loop(self):
        while True:
            try:
                slot, waited = self.decoded.get(self.stop)
                if slot is _END:
                    return
                self.queue_waits += [waited] * slot.count
                while not self.in_flight.acquire(timeout=0.1):
                    if self.stop.is_set():
                        return
                self.backend.submit(slot)
                self.submitted.put(slot)
            except KeyboardInterrupt:
                if not self.source.is_camera:
                    raise
                self.end_of_stream.set()  # frames in flight are written

    def run(self):
        with collector_off_old_objects(self.times):
            seconds = self._run_stages()
        if self.errors:
            raise self.errors[0]
        return self.report(seconds)

    def _run_stages(self):
        """The stage threads and the model loop; the seconds they took."""
        self.started = time.perf_counter()
        threads = [_Worker(target, self.stop, self.errors, name)
                   for name, target in (('decode', self._read),
                                        ('collect', self._collect),
                                        ('encode', self._encode))]
        threads += [_Worker(self._write_labels, self.stop, self.errors,
                            'labels') for _ in range(LABEL_WRITERS)
                    if self.labels_dir]
        for thread in threads:
            thread.start()
        try:
            self._model_loop()
            self.submitted.put(_END)
            for thread in threads:
                while thread.is_alive() and not self.stop.is_set():
                    thread.join(timeout=0.1)
        except BaseException:
            self.stop.set()
            raise
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=5)
        return time.perf_counter() - self.started

    def report(self, seconds):
        frames = self.frames
        model = self.times['model']
        latency = np.array(self.latencies or [0.0]) * 1000
        return dict(
            frames=frames, dropped=self.dropped, seconds=seconds,
            fps=frames / seconds, model_seconds=model,
            model_fps=frames / max(model, 1e-9),
            latency_ms=dict(p50=float(np.percentile(latency, 50)),
                            p99=float(np.percentile(latency, 99))),
            stage_ms={k: v * 1000 / max(frames, 1)
                      for k, v in self.times.items()},
            queue_waits=self.queue_waits)
