"""Silence the warnings our dependencies print in every tool that are known
to be harmless here, each matched by its message and the module it comes
from (every other warning still shows):

* setuptools: ``pkg_resources is deprecated`` (mmengine imports it; we pin
  ``setuptools<81`` in setup.py, so it stays available);
* mmseg: ``build_loss`` and ``build_pixel_sampler`` "would be deprecated"
  (mmseg's own heads call them),
  the ``avg_non_ignore`` default note (our configs choose the default on
  purpose, as MMSeg's Cityscapes configs do);
* mmseg's ``SegVisualizationHook``: "The draw is False" (drawing is off
  unless ``tools/test.py --show/--show-dir`` turns it on);
* mmengine's ``Visualizer``: "Failed to add ... LocalVisBackend, please
  provide the ``save_dir``" (``MMSegInferencer`` builds the config's
  visualizer without one: it shows results and writes nothing there).

And the warnings mmengine logs (``print_log``) on every run, which the
console of ``tools/train.py`` and ``tools/test.py`` leaves out (the log file
in the work_dir keeps them): the metric ``prefix`` mmseg's metrics never
set (their keys stay ``mIoU``...), and the deprecation of ``FileClient`` and
``HardDiskBackend``, which mmengine 0.10's own ``CheckpointHook`` creates.
"""
import warnings

#: ``(message regex, module regex)`` of each known harmless warning.
KNOWN_HARMLESS = (
    (r'pkg_resources is deprecated as an API', r'(mmengine|importlib)(\.|$)'),
    (r'``build_loss`` would be deprecated soon', r'mmseg\.models\.builder$'),
    (r'``build_pixel_sampler`` would be deprecated soon',
     r'mmseg\.structures\.sampler\.builder$'),
    (r'Default ``avg_non_ignore`` is False',
     r'mmseg\.models\.losses\.cross_entropy_loss$'),
    (r'The draw is False', r'mmseg\.engine\.hooks\.visualization_hook$'),
    (r"Failed to add <class 'mmengine\.visualization\.vis_backend\."
     r"LocalVisBackend'>, please provide the `save_dir`",
     r'mmengine\.visualization\.visualizer$'),
)

#: Message regexes of the known harmless warnings mmengine logs.
KNOWN_HARMLESS_LOGS = (
    r'The prefix is not set in metric class',
    r'"FileClient" will be deprecated in future',
    r'"HardDiskBackend" is the alias of "LocalBackend"',
)


def silence_known_warnings():
    """Install the filters; call before mmengine/mmseg are imported."""
    for message, module in KNOWN_HARMLESS:
        warnings.filterwarnings('ignore', message=message,
                                category=UserWarning, module=module)
