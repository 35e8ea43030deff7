"""The model stage without CUDA (or off the fast path): the predictor on host
arrays, the overlay on the CPU in the collector thread."""
import time

import cv2
import numpy as np

from .overlay import CPUOverlay


class HostBackend:
    """:meth:`submit` runs the model (the pipeline's model thread),
    :meth:`finish` paints the overlay (the collector thread), so that the
    model never waits for the painting."""

    def __init__(self, predictor, palette_bgr, opacity, video_format):
        self.predictor = predictor
        self.video_format = video_format
        self.overlay = CPUOverlay(palette_bgr, opacity)

    def new_buffers(self, batch_size, size):
        width, height = size
        frames = np.empty((batch_size, height, width, 3), np.uint8)
        return dict(frames=frames, host_frames=frames)

    def warm_up(self, batch_size, size):
        pass

    def submit(self, slot):
        tic = time.perf_counter()
        frames = slot.buffers['frames'][:slot.count]
        slot.labels = np.stack(self.predictor.predict(list(frames)))
        slot.model_seconds = time.perf_counter() - tic

    def finish(self, slot):
        frames = slot.buffers['frames'][:slot.count]
        video, tic = None, time.perf_counter()
        if self.video_format:
            video = [self.overlay(frame, labels)
                     for frame, labels in zip(frames, slot.labels)]
            if self.video_format == 'yuv420p':
                video = [cv2.cvtColor(v, cv2.COLOR_BGR2YUV_I420)
                         for v in video]
        return slot.labels, video, dict(
            model=slot.model_seconds, overlay=time.perf_counter() - tic)
