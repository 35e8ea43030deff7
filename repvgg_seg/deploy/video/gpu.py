"""The GPU stages of the video pipeline: copy in on its own stream, the fast
path, the overlay and its conversion to yuv420p, copy back into pinned
buffers on another stream. Nothing here waits for the GPU: the collector
thread waits for each batch's last event.

The tensor functions run on any device (the tests check them on the CPU);
the streams and events need CUDA.
"""
import torch

from .overlay import BLEND_ONE, blend_weight, colour_table

#: BT.601 limited range (what FFmpeg and OpenCV assume for yuv420p),
#: per B, G, R.
LUMA = (0.097906, 0.504129, 0.256788)
CHROMA_U = (0.439216, -0.290993, -0.148223)
CHROMA_V = (-0.071427, -0.367788, 0.439216)


def blend(frames, labels, table, keep):
    """The fixed-point blend of :mod:`.overlay` on tensors."""
    colours = table[labels.long()]
    return ((frames.int() * keep + colours) >> 8).to(torch.uint8)


class TensorOverlay:
    """:class:`~.overlay.CPUOverlay` on tensors: ``N x H x W x 3`` uint8
    frames and ``N x H x W`` labels -> blended frames, the same bytes."""

    def __init__(self, palette_bgr, opacity, device):
        self.keep = BLEND_ONE - blend_weight(opacity)
        self.table = torch.from_numpy(colour_table(
            palette_bgr, opacity).astype('int32')).to(device)

    def __call__(self, frames, labels):
        return blend(frames, labels, self.table, self.keep)


def _mix(channels, weights, offset):
    b, g, r = channels
    return b * weights[0] + g * weights[1] + r * weights[2] + offset


def bgr_to_yuv420(frames):
    """``N x H x W x 3`` BGR uint8 -> ``N x 3H/2 x W`` planar yuv420p
    (BT.601 limited range, chroma averaged over 2x2), as encoders take it.
    Elementwise only, so that torch.compile fuses it with the blend."""
    n, height, width, _ = frames.shape
    x = frames.float()
    luma = _mix(x.unbind(-1), LUMA, 16.0)
    pooled = x.view(n, height // 2, 2, width // 2, 2, 3).mean(dim=(2, 4))
    channels = pooled.unbind(-1)
    planes = torch.cat([luma.reshape(n, -1),
                        _mix(channels, CHROMA_U, 128.0).reshape(n, -1),
                        _mix(channels, CHROMA_V, 128.0).reshape(n, -1)],
                       dim=1)
    return planes.round().clamp(0, 255).to(torch.uint8).view(
        n, height * 3 // 2, width)


def paint_yuv420(frames, labels, table, keep):
    return bgr_to_yuv420(blend(frames, labels, table, keep))


def pinned(shape, pin):
    return torch.empty(shape, dtype=torch.uint8, pin_memory=pin)


class CUDABackend:
    """Runs batches on the GPU without waiting for them: :meth:`submit`
    queues the copy in, the fast path, the overlay and the copy back on
    three streams; :meth:`finish` (another thread) waits for the batch."""

    def __init__(self, fast, palette_bgr, opacity, video_format):
        self.fast, self.device = fast, fast.device
        self.video_format = video_format  # None, 'bgr24' or 'yuv420p'
        self.overlay = TensorOverlay(palette_bgr, opacity, self.device)
        # one fused kernel per frame instead of ~15 (1.2 ms -> ~0.05 ms at
        # 2048x1024), compiled for one frame shape (no batch recompiles)
        self._paint = torch.compile(
            paint_yuv420 if video_format == 'yuv420p' else blend,
            dynamic=False)
        self.copy_in, self.compute, self.copy_back = (
            torch.cuda.Stream(self.device) for _ in range(3))

    def new_buffers(self, batch_size, size):
        """Pinned host buffers and device input of one batch slot."""
        width, height = size
        frames = pinned((batch_size, height, width, 3), True)
        video = None
        if self.video_format == 'yuv420p':
            video = pinned((batch_size, height * 3 // 2, width), True)
        elif self.video_format == 'bgr24':
            video = pinned((batch_size, height, width, 3), True)
        return dict(frames=frames, host_frames=frames.numpy(), labels=pinned(
            (batch_size, height, width), True), video=video,
            device_frames=torch.empty(frames.shape, dtype=torch.uint8,
                                      device=self.device),
            events=[torch.cuda.Event(enable_timing=True) for _ in range(8)])

    @torch.inference_mode()
    def submit(self, slot):
        buf, n = slot.buffers, slot.count
        ev = buf['events']
        with torch.cuda.stream(self.copy_in):
            ev[0].record()
            buf['device_frames'][:n].copy_(buf['frames'][:n],
                                           non_blocking=True)
            ev[1].record()
        self.compute.wait_event(ev[1])
        with torch.cuda.stream(self.compute):
            ev[2].record()
            # always the full batch (a short last one reads stale frames):
            # a new shape would capture a new CUDA graph mid-run
            labels = self.fast(buf['device_frames'])[:n]
            ev[3].record()
            video = [self._paint(buf['device_frames'][i:i + 1],
                                 labels[i:i + 1], self.overlay.table,
                                 self.overlay.keep)
                     for i in range(n)] if self.video_format else []
            ev[4].record()
        self.copy_back.wait_event(ev[4])
        with torch.cuda.stream(self.copy_back):
            ev[5].record()
            buf['labels'][:n].copy_(labels, non_blocking=True)
            labels.record_stream(self.copy_back)
            for i, painted in enumerate(video):
                buf['video'][i:i + 1].copy_(painted, non_blocking=True)
                painted.record_stream(self.copy_back)
            ev[6].record()

    def finish(self, slot):
        """Wait for the batch; its labels and video frames (host arrays)
        and the GPU time of each stage (seconds)."""
        ev, n = slot.buffers['events'], slot.count
        ev[6].synchronize()
        times = dict(copy=ev[0].elapsed_time(ev[1]),
                     model=ev[2].elapsed_time(ev[3]),
                     overlay=ev[3].elapsed_time(ev[4]),
                     copy_back=ev[5].elapsed_time(ev[6]))
        video = slot.buffers['video']
        return (slot.buffers['labels'][:n].numpy(),
                None if video is None or not self.video_format else
                video[:n].numpy(), {k: v / 1000 for k, v in times.items()})

    def warm_up(self, batch_size, size):
        """Compile and capture the fast path and the overlay for this batch
        shape before the clock starts (tens of seconds for torch.compile).
        The frames are a plain tensor like the slots' buffers: an inference
        tensor would make torch.compile recompile on the first real frame."""
        width, height = size
        frames = torch.zeros((batch_size, height, width, 3),
                             dtype=torch.uint8, device=self.device)
        with torch.inference_mode(), torch.cuda.stream(self.compute):
            labels = self.fast(frames)
            if self.video_format:
                self._paint(frames[:1], labels[:1], self.overlay.table,
                            self.overlay.keep)
        self.compute.synchronize()
