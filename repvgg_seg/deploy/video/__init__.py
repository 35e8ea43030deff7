"""Real-time segmentation of a video file, a folder of frames or a camera:
a pipeline whose stages (decode, copy, model, overlay, copy back, encode)
overlap, writing H.264 through PyAV."""
from .overlay import CPUOverlay, bgr_palette, reference_overlay
from .pipeline import VideoPipeline
from .segment import segment_video
from .sources import FPS_RANGE, FrameSource, VideoError
from .writers import check_outputs, open_video_writer

__all__ = [
    'CPUOverlay', 'FPS_RANGE', 'FrameSource', 'VideoError', 'VideoPipeline',
    'bgr_palette', 'check_outputs', 'open_video_writer', 'reference_overlay',
    'segment_video'
]
