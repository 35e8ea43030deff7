"""Training and testing with mmengine's Runner, as MMSegmentation's
``tools/train.py`` and ``tools/test.py`` do, plus what CPU runs need and the
checks that fail in seconds, with one line, on what the Runner would trip
over deep inside (or, for ``load_from``, half-load with warnings)."""
import logging
import math
import os
import os.path as osp
import shutil
from contextlib import contextmanager

import torch
from mmengine.dist import get_rank
from mmengine.logging import print_log

from mmseg.registry import RUNNERS
from ..compat.crash_safe import remove_stale_temp_files
from ..datasets import check_data_roots
from ..deploy import deploy_config, is_deploy_config
from ..engine import ChannelsLastHook
from ..datasets.check import data_folders
from ..models import build_model
from ..models.checkpoints import (CheckpointMismatch, arch_label,
                                  backbone_arch, is_fused_checkpoint,
                                  load_weights, read_checkpoint,
                                  state_dict_of)
from ..models.pretrained_urls import fetch_pretrained
from ..compat import find_latest_complete_checkpoint
from ..utils.cli import has_display
from ..utils.config import read_config
from ..utils.errors import ConfigError, InvalidArgument, UserError
from ..utils.files import TMP_PREFIX, folder_lock, own_folder
from .console import QuietRunner, RunSummary, shown_path

#: mmseg evaluators that save predicted label maps under ``output_dir``.
SEG_EVALUATORS_WITH_OUTPUT = ('IoUMetric', 'CityscapesMetric')


#: Variables torchrun sets for each process of a ``--launcher pytorch`` run.
TORCHRUN_VARIABLES = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and \
        value > 0


def _non_negative_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and \
        value >= 0


def _seed(value):
    return value is None or (isinstance(value, int)
                             and not isinstance(value, bool))


def _learning_rate(value):
    return isinstance(value, (int, float)) and not isinstance(
        value, bool) and math.isfinite(value) and value > 0


#: ``(setting, valid(value), what it must be)``, checked where present: the
#: Runner would fail on these deep inside (or, for ``val_interval``, at the
#: first validation), with a traceback.
RUNNER_SETTINGS = (
    ('train_cfg.max_iters', _positive_int, 'a positive integer'),
    ('train_cfg.max_epochs', _positive_int, 'a positive integer'),
    ('train_cfg.val_interval', _positive_int, 'a positive integer'),
    ('train_dataloader.batch_size', _positive_int, 'a positive integer'),
    ('val_dataloader.batch_size', _positive_int, 'a positive integer'),
    ('test_dataloader.batch_size', _positive_int, 'a positive integer'),
    ('train_dataloader.num_workers', _non_negative_int, 'an integer >= 0'),
    ('val_dataloader.num_workers', _non_negative_int, 'an integer >= 0'),
    ('test_dataloader.num_workers', _non_negative_int, 'an integer >= 0'),
    ('model.decode_head.num_classes', _positive_int, 'a positive integer'),
    ('model.head.num_classes', _positive_int, 'a positive integer'),
    ('randomness.seed', _seed, 'an integer or None'),
    ('env_cfg.torch_num_threads', lambda value: value is None or
     _positive_int(value), 'a positive integer, or None for torch\'s '
     'default'),
    ('optim_wrapper.optimizer.lr', _learning_rate,
     'a finite positive number'),
)
_MISSING = object()


def _setting(cfg, dotted):
    first, *rest = dotted.split('.')
    node = cfg.get(first, _MISSING)
    for part in rest:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def check_runner_settings(cfg):
    """Refuse, in one line, a config the Runner cannot run: no model, or a
    setting of :data:`RUNNER_SETTINGS` of the wrong kind."""
    if not isinstance(cfg.get('model'), dict):
        raise ConfigError(f'{cfg.filename} defines no model: a config needs '
                          'model = dict(type=...), or a _base_ config that '
                          'defines it')
    for key, valid, what in RUNNER_SETTINGS:
        value = _setting(cfg, key)
        if value is not _MISSING and not valid(value):
            raise ConfigError(f'{key} is {value!r} (from {cfg.filename} '
                              f'or --cfg-options): it must be {what}')


def default_work_dir(config_path):
    """MMSeg's default: ``work_dirs/<config name>``."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def load_runner_config(path, cfg_options=None, work_dir=None,
                       launcher='none'):
    """Read ``path``, apply ``--cfg-options`` and ``--work-dir`` the MMSeg
    way (default ``work_dirs/<config name>``), and our one addition to
    ``env_cfg``: ``torch_num_threads``, the threads of the CPU ops (their
    sums, hence the trained weights, depend on it; MMSeg's own tools leave
    torch's default, the number of cores)."""
    cfg = read_config(path, cfg_options)
    check_runner_settings(cfg)
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if launcher == 'pytorch' and missing:
        raise InvalidArgument(
            f'--launcher pytorch runs under torchrun, which sets '
            f'{", ".join(missing)}: start it as torchrun --nproc_per_node=N '
            'tools/train.py CONFIG --launcher pytorch (or drop --launcher)')
    cfg.launcher = launcher
    threads = (cfg.get('env_cfg') or {}).get('torch_num_threads')
    if threads:
        torch.set_num_threads(threads)
    if not torch.cuda.is_available():  # torch warns: no page-locked memory
        for split in ('train', 'val', 'test'):
            loader = cfg.get(f'{split}_dataloader')
            if isinstance(loader, dict) and loader.get('pin_memory'):
                loader['pin_memory'] = False
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(path)
    if launcher != 'none' and not torch.cuda.is_available():
        _distributed_on_cpu(cfg)
    return cfg


def _distributed_on_cpu(cfg):
    """Distributed CPU runs need gloo, and SyncBN has no CPU kernel: use BN
    (each process normalises its own batch) and say so.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device``, which a CPU
    build of torch rejects, so the gloo group is started here from the
    variables torchrun sets (mmengine then finds it initialised), and DDP is
    built without GPU device ids.
    """
    if cfg.launcher != 'pytorch':
        raise InvalidArgument(
            f'--launcher {cfg.launcher} needs GPUs; for distributed training '
            'on CPUs use torchrun with --launcher pytorch')
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    # mmengine's default DDP wrapper pins device_ids=[LOCAL_RANK] (GPU only)
    cfg.setdefault('model_wrapper_cfg', dict(
        type='MMDistributedDataParallel', device_ids=None,
        broadcast_buffers=False))
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend='gloo')
    if _replace_sync_bn(cfg.model):
        print_log('No GPU: SyncBN layers are built as BN for this CPU run '
                  '(gloo backend); the model structure and checkpoint keys '
                  'are the same.', logger='current', level=logging.WARNING)


def _replace_sync_bn(node):
    found = False
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            found = True
        for value in node.values():
            found |= _replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            found |= _replace_sync_bn(value)
    return found


#: ``--amp`` values and the autocast dtype each one trains in.
AMP_DTYPES = {'fp16': 'float16', 'bf16': 'bfloat16'}


def enable_amp(cfg, precision='fp16'):
    """``--amp [fp16|bf16]``: mixed precision (mmengine's AmpOptimWrapper)
    in channels_last (:class:`~repvgg_seg.engine.ChannelsLastHook`, added
    when the config has none), the fast layout for half-precision convs."""
    if precision not in AMP_DTYPES:
        raise InvalidArgument(f'--amp {precision}: choose one of '
                              f'{", ".join(AMP_DTYPES)}')
    if not torch.cuda.is_available():
        raise InvalidArgument(
            '--amp needs a CUDA GPU and none is available here (mmengine\'s '
            'AmpOptimWrapper trains only on GPUs): train without --amp')
    wrapper = cfg.optim_wrapper
    if wrapper.type not in ('OptimWrapper', 'AmpOptimWrapper'):
        raise InvalidArgument('--amp needs optim_wrapper.type OptimWrapper, '
                              f'got {wrapper.type}')
    if wrapper.type == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config; --amp '
                  f'sets its dtype to {AMP_DTYPES[precision]}.',
                  logger='current', level=logging.WARNING)
    wrapper.type = 'AmpOptimWrapper'
    wrapper.setdefault('loss_scale', 'dynamic')
    wrapper.dtype = AMP_DTYPES[precision]
    # assigned, not appended in place: a ConfigDict hands out copies of
    # values it creates (MMSeg's own configs have no custom_hooks)
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(hook.get('type') in ('ChannelsLastHook', ChannelsLastHook)
               for hook in hooks):
        cfg.custom_hooks = hooks + [dict(type='ChannelsLastHook')]


def build_runner(cfg, summary=None):
    """The Runner of ``cfg`` (a :class:`QuietRunner`, unless the config
    names its own ``runner_type``), with the ``summary`` hook (a
    :class:`RunSummary`) if given; a KeyError/ValueError/TypeError (or a
    RuntimeError of torch: a negative layer width) while building it (the
    model, the hooks) is a setting of the config that does not work,
    reported as such."""
    try:
        if 'runner_type' in cfg:
            runner = RUNNERS.build(cfg)
        else:
            runner = QuietRunner.from_cfg(cfg)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        if isinstance(exc, UserError):
            raise
        raise ConfigError(f'cannot build the Runner of {cfg.filename} '
                          f'({type(exc).__name__}: {exc})') from None
    if summary is not None:
        runner.register_hook(summary)
    return runner


def check_checkpoint(cfg, checkpoint, whole_model=True):
    """Refuse, before the Runner starts, a checkpoint that must not or
    cannot be loaded into ``cfg.model``: the Runner would load what fits
    and only warn. ``whole_model=False`` (``load_from`` for fine-tuning,
    where heads may differ) only requires the same RepVGG arch. A fused
    checkpoint switches ``cfg.model`` to the fused structure first (what
    :func:`load_trained_model` does for the API), so it tests with the
    training config as with its deploy config."""
    source = read_checkpoint(checkpoint)
    if whole_model:
        if is_fused_checkpoint(source, checkpoint) and \
                not is_deploy_config(cfg):
            cfg.model = deploy_config(cfg).model
            print_log(f'{checkpoint} is fused: testing the fused structure '
                      f'of {cfg.filename}', logger='current')
        load_weights(build_model(cfg), source, checkpoint, cfg.filename)
        return
    with torch.device('meta'):
        model = build_model(cfg)
    found = backbone_arch(state_dict_of(source, checkpoint))
    expected = backbone_arch(model.state_dict())
    if found != expected:
        raise CheckpointMismatch(f'{checkpoint} holds {arch_label(found)} '
                                 f'weights but {cfg.filename} builds '
                                 f'{arch_label(expected)}: use a '
                                 'checkpoint of the same arch')


def configure_show(cfg, show=False, show_dir=None, wait_time=2,
                   interval=1):
    """``--show``/``--show-dir``: paint every ``interval``-th test image
    (MMSeg's hook paints every 50th by default), shown in a window or
    written to ``show_dir/vis_data/vis_image/`` (a relative ``show_dir``
    is taken under the work dir)."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise InvalidArgument('--show/--show-dir need a visualization hook in '
                              'default_hooks (SegVisualizationHook)')
    if interval < 1:
        raise InvalidArgument(f'--show-interval must be >= 1, got {interval}')
    if show and not has_display():
        raise InvalidArgument('--show needs a display, and neither DISPLAY '
                              'nor WAYLAND_DISPLAY is set: save the painted '
                              'images with --show-dir DIR instead')
    if show_dir and osp.isfile(osp.join(cfg.work_dir, show_dir)):
        raise InvalidArgument(f'--show-dir {show_dir} is a file: give a '
                              'folder for the painted images')
    hook.update(draw=True, interval=interval)
    if show:
        hook.update(show=True, wait_time=wait_time)
    if show_dir:
        cfg.visualizer['save_dir'] = osp.join(cfg.work_dir, show_dir)


def _refuse_out_among_inputs(cfg, out):
    """Predictions take their image's file name: an ``--out`` folder in the
    test data would replace the images (or mix with the label maps)."""
    out_real = osp.realpath(out)
    for folder in data_folders(cfg.test_dataloader.dataset):
        folder_real = osp.realpath(folder)
        if (out_real == folder_real
                or out_real.startswith(osp.join(folder_real, ''))
                or folder_real.startswith(osp.join(out_real, ''))):
            raise InvalidArgument(
                f'--out {out} is in or holds the test data {folder}: the '
                'predictions would overwrite or mix with it; choose a '
                'folder outside the data set (e.g. work_dirs/NAME/preds)')


def configure_test(cfg, checkpoint, out=None, show=False, show_dir=None,
                   wait_time=2, tta=False, show_interval=1):
    """Apply ``tools/test.py``'s options to ``cfg`` (as MMSeg's test.py);
    a missing checkpoint, or a folder, is refused by the reading."""
    check_checkpoint(cfg, checkpoint)
    cfg.load_from = checkpoint
    if show or show_dir:
        configure_show(cfg, show, show_dir, wait_time, show_interval)
    if tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if out is not None:
        _refuse_out_among_inputs(cfg, out)
        if cfg.test_evaluator.get('type') not in SEG_EVALUATORS_WITH_OUTPUT:
            raise InvalidArgument(
                f'--out saves segmentation label maps; the test evaluator '
                f'{cfg.test_evaluator.get("type")} of this config does not '
                f'write any (use --work-dir for the metrics)')
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
    return cfg


def train(config, work_dir=None, resume=False, amp=None, cfg_options=None,
          launcher='none'):
    """``tools/train.py``: train ``config`` (a path) into ``work_dir``;
    ``amp``: None, or a key of :data:`AMP_DTYPES`."""
    cfg = load_runner_config(config, cfg_options, work_dir, launcher)
    if amp:
        enable_amp(cfg, amp)
    cfg.resume = resume
    # Fail in seconds, with one line, on what the Runner would trip over deep
    # inside: the user's own checkpoints first, then the pretrained download,
    # then the data folders.
    if cfg.get('load_from') and not cfg.resume:
        check_checkpoint(cfg, cfg.load_from, whole_model=False)
    if cfg.resume:  # mmengine would resume what fits, with warnings
        resume_from = cfg.get('load_from') or \
            find_latest_complete_checkpoint(cfg.work_dir)
        if resume_from:
            check_checkpoint(cfg, resume_from)
    fetch_pretrained(cfg.model)
    check_data_roots(cfg, ('train', 'val'))
    summary = RunSummary(
        next_command=f'python tools/test.py {shown_path(config)} '
        '{checkpoint}')
    if _launcher_rank(launcher) != 0:  # rank 0 alone writes the work_dir
        _train_and_leave(build_runner(cfg, summary))
        return
    with folder_lock(cfg.work_dir, 'training', 'pass another --work-dir'):
        remove_stale_temp_files(cfg.work_dir)
        _train_and_leave(build_runner(cfg, summary))


def _launcher_rank(launcher):
    """This process's rank, before the Runner initialises the group."""
    variable = dict(none=None, slurm='SLURM_PROCID',
                    mpi='OMPI_COMM_WORLD_RANK').get(launcher, 'RANK')
    return int(os.environ.get(variable, 0)) if variable else 0


def _train_and_leave(runner):
    try:
        runner.train()
    except BaseException:
        _leave_process_group(wait_for_others=False)
        raise
    _leave_process_group(wait_for_others=True)


def _leave_process_group(wait_for_others):
    """End a distributed run's process group before the interpreter exits:
    a rank that exits with gloo's threads still running aborts
    ("terminate called without an active exception"), which fails the
    whole torchrun job. Only a rank that finished waits for the others."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return
    if wait_for_others:
        dist.barrier()
    dist.destroy_process_group()


def test(config, checkpoint, work_dir=None, out=None, show=False,
         show_dir=None, wait_time=2, tta=False, cfg_options=None,
         launcher='none', show_interval=1):
    """``tools/test.py``: evaluate ``checkpoint`` (training or fused form)
    with ``config``'s test set and metric."""
    cfg = load_runner_config(config, cfg_options, work_dir, launcher)
    if work_dir is None and cfg.work_dir == default_work_dir(config) and \
            is_deploy_config(cfg):  # tools/fuse.py's config, next to it
        cfg.work_dir = osp.dirname(osp.abspath(checkpoint))
    configure_test(cfg, checkpoint, out, show, show_dir, wait_time, tta,
                   show_interval)
    check_data_roots(cfg, ('test', ))
    summary = RunSummary(checkpoint, None if is_deploy_config(cfg) else (
        f'python tools/fuse.py {shown_path(config)} {{checkpoint}} '
        f'{shown_path(osp.join(cfg.work_dir, "fused.pth"))}'))
    if out is None:
        return build_runner(cfg, summary).test()
    with _staged_output_dir(cfg, out):
        return build_runner(cfg, summary).test()


def _run_id(launcher):
    """One id shared by the processes of this run, another for each run."""
    if launcher == 'none':
        return str(os.getpid())
    if launcher == 'slurm':
        return f'{os.environ.get("SLURM_JOB_ID")}.' \
               f'{os.environ.get("SLURM_STEP_ID")}'
    return os.environ.get('MASTER_PORT', 'dist')


@contextmanager
def _staged_output_dir(cfg, out):
    """The evaluator writes its label maps into a temporary folder next to
    ``out``; they move to ``out`` only when the test succeeds, so a failed
    run (disk full, Ctrl-C) leaves no empty or partial PNG under ``out``."""
    parent, name = osp.split(osp.abspath(out))
    staging = osp.join(parent, f'{TMP_PREFIX}{name}.{_run_id(cfg.launcher)}')
    own_folder(staging)
    cfg.test_evaluator['output_dir'] = staging
    try:
        yield
        if get_rank() == 0:  # the test ends with a gather: all ranks wrote
            os.makedirs(out, exist_ok=True)
            for entry in os.listdir(staging):
                os.replace(osp.join(staging, entry), osp.join(out, entry))
            os.rmdir(staging)
    finally:
        if get_rank() == 0:
            shutil.rmtree(staging, ignore_errors=True)
