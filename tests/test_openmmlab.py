"""At home in OpenMMLab: mmseg imports first on mmcv-lite (the installed
.pth hook, in a fresh interpreter; both wheel kinds carry it), MMSeg's own
tools/train.py and tools/test.py (the copies in the mmseg wheel) train,
resume and test our config and a user's config with ``custom_imports``,
``mmseg.apis.MMSegInferencer`` runs our model, and our tools/test.py takes a
fused checkpoint with the training config and paints every image into
--show-dir under the work dir."""
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import mmseg
import numpy as np
import pytest
import torch

from helpers import citymini_root
from repvgg_seg.apis import fuse_checkpoint
from repvgg_seg.compat import compiled_ops_available
from repvgg_seg.utils.config import read_config

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / 'tests/configs/pspnet_repvgg_tiny_citymini.py')
MMSEG_TOOLS = Path(mmseg.__file__).parent / '.mim' / 'tools'
needs_lite = pytest.mark.skipif(compiled_ops_available(),
                                reason='mmcv-lite behaviour')


def _python(code, site_dir=None):
    """``code`` in a fresh interpreter; with ``site_dir`` its .pth files are
    processed first, as site.py does for site-packages at start-up."""
    prelude = f'import site; site.addsitedir({str(site_dir)!r}); ' \
        if site_dir else ''
    return subprocess.run([sys.executable, '-c', prelude + code],
                          capture_output=True, text=True, timeout=300)


IMPORTS_MMSEG_FIRST = [
    'from mmseg.apis import init_model, MMSegInferencer',
    'from mmseg.utils import register_all_modules; register_all_modules()',
    'import mmseg.models',
]
REPORT = ('; import sys; print("shim", getattr(sys.modules["mmcv.ops"], '
          '"__repvgg_seg_shim__", False), "torch-at-start", TORCH_AT_START, '
          '"repvgg_seg" in sys.modules)')


@needs_lite
@pytest.mark.parametrize('code', IMPORTS_MMSEG_FIRST)
def test_installed_hook_lets_mmseg_import_first(code):
    probe = 'import sys; TORCH_AT_START = "torch" in sys.modules; '
    result = _python(probe + code + REPORT, site_dir=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    # the stand-in is active, start-up imported nothing heavy, and mmseg
    # did not need repvgg_seg
    assert result.stdout.split() == ['shim', 'True', 'torch-at-start',
                                     'False', 'False']
    # the control: the same imports with the installed hook's finder taken
    # off sys.meta_path fail as they did before the hook existed
    unhook = ('import sys; sys.meta_path[:] = [f for f in sys.meta_path if '
              'getattr(f, "__name__", type(f).__name__) not in '
              '("LiteOpsTrigger", "LiteOpsFinder")]; ')
    without_hook = _python(unhook + code)
    assert "No module named 'mmcv._ext'" in without_hook.stderr


def _hook_site(tmp_path, module_source=None):
    """A site dir holding the hook's .pth, and ``repvgg_seg_hook.py`` with
    ``module_source`` (default: the real one; '' for none, as after an
    uninstall that left the .pth)."""
    shutil.copy(REPO / 'repvgg_seg_hook.pth', tmp_path)
    if module_source is None:
        shutil.copy(REPO / 'repvgg_seg_hook.py', tmp_path)
    elif module_source:
        (tmp_path / 'repvgg_seg_hook.py').write_text(module_source)
    return tmp_path


def _bare_python(code, site_dir):
    """``code`` in an interpreter without site-packages (``-S``, and run in
    ``site_dir``: no repvgg_seg_hook from the source tree) that then
    processes ``site_dir`` as site.py does, with ``BEFORE`` the modules
    imported before that."""
    return subprocess.run(
        [sys.executable, '-S', '-c', 'import site, sys; BEFORE = '
         f'set(sys.modules); site.addsitedir({str(site_dir)!r}); ' + code],
        cwd=site_dir, capture_output=True, text=True, timeout=300)


def test_hook_pth_imports_nothing_at_start_up(tmp_path):
    # the .pth runs in every interpreter: it may only add its trigger
    result = _bare_python(
        'print(sorted(set(sys.modules) - BEFORE), [getattr(f, "__name__", '
        '"") for f in sys.meta_path].count("LiteOpsTrigger"))',
        _hook_site(tmp_path))
    assert (result.stdout, result.stderr) == ('[] 1\n', '')


@pytest.mark.parametrize('module_source', [
    '', 'raise RuntimeError("broken hook")\n', 'def install(:\n'],
    ids=['uninstalled', 'raises', 'syntax-error'])
def test_broken_or_missing_hook_module_keeps_every_process_quiet(
        tmp_path, module_source):
    site_dir = _hook_site(tmp_path, module_source)
    unrelated = _bare_python('import json; print("ok")', site_dir)
    assert (unrelated.returncode, unrelated.stdout, unrelated.stderr) == (
        0, 'ok\n', '')
    # importing mmcv.ops gets mmcv's own error, not the hook's traceback
    site_packages = str(Path(mmseg.__file__).parents[1])
    mmcv_ops = _bare_python(f'sys.path.append({site_packages!r}); '
                            'import mmcv.ops', site_dir)
    assert 'mmcv._ext' in mmcv_ops.stderr
    assert 'broken hook' not in mmcv_ops.stderr
    assert 'repvgg_seg_hook' not in mmcv_ops.stderr


@pytest.mark.skipif(not compiled_ops_available(), reason='needs full mmcv')
def test_installed_hook_keeps_full_mmcvs_real_ops():
    result = _python('import mmcv.ops; print(getattr(mmcv.ops, '
                     '"__repvgg_seg_shim__", False), mmcv.ops.DeformConv2d)',
                     site_dir=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith('False <class')


def test_hook_steps_aside_for_full_mmcv(monkeypatch):
    import repvgg_seg_hook
    finder = repvgg_seg_hook.LiteOpsFinder()
    assert finder.find_spec('mmcv.cnn', None) is None
    monkeypatch.setattr(repvgg_seg_hook, 'compiled_ops_available',
                        lambda: True)
    assert finder.find_spec('mmcv.ops', ['/x']) is None


@pytest.fixture(scope='module')
def wheels(tmp_path_factory):
    """A regular and an editable wheel built from a copy of the project."""
    src = tmp_path_factory.mktemp('src')
    for name in ('setup.py', 'README.md', 'repvgg_seg_hook.py',
                 'repvgg_seg_hook.pth', 'repvgg_seg_cli.py'):
        shutil.copy(REPO / name, src)
    shutil.copytree(REPO / 'repvgg_seg', src / 'repvgg_seg',
                    ignore=shutil.ignore_patterns('__pycache__'))
    code = ('import setuptools.build_meta as b; '
            'b.build_wheel("dist"); b.build_editable("dist")')
    result = subprocess.run([sys.executable, '-c', code], cwd=src,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    built = sorted((src / 'dist').glob('*.whl'))
    assert [w.name.count('editable') for w in built] == [1, 0], built
    return built


@needs_lite
def test_wheel_and_editable_installs_carry_the_hook(wheels, tmp_path):
    for wheel in wheels:
        site_dir = tmp_path / wheel.stem
        with zipfile.ZipFile(wheel) as archive:  # what pip installs
            assert 'repvgg_seg_hook.pth' in archive.namelist()
            archive.extractall(site_dir)
        result = _python('import sys; TORCH_AT_START = False; '
                         + IMPORTS_MMSEG_FIRST[0] + REPORT, site_dir)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split()[1] == 'True'


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return citymini_root(tmp_path_factory, 6, 3, height=128, width=256)


def _data_options(root):
    return [f'{split}_dataloader.dataset.data_root={root}'
            for split in ('train', 'val', 'test')]


def _run(script, *args, cwd=REPO):
    result = subprocess.run([sys.executable, str(script), *map(str, args)],
                            cwd=cwd, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout + result.stderr


def _miou(output):
    return float(re.findall(r'mIoU: ([\d.]+)', output)[-1])


@pytest.fixture(scope='module')
def mmseg_trained(tmp_path_factory, data_root):
    """MMSeg's own train.py: 4 of the 6 iterations, then --resume."""
    work_dir = tmp_path_factory.mktemp('mmseg_train')
    _run(MMSEG_TOOLS / 'train.py', CONFIG, '--work-dir', work_dir,
         '--cfg-options', *_data_options(data_root), 'train_cfg.max_iters=4')
    first = sorted(p.name for p in work_dir.glob('iter_*.pth'))
    output = _run(MMSEG_TOOLS / 'train.py', CONFIG, '--work-dir', work_dir,
                  '--resume', '--cfg-options', *_data_options(data_root))
    return work_dir, first, output


def test_mmseg_train_tool_trains_and_resumes(mmseg_trained):
    work_dir, first, output = mmseg_trained
    assert first == ['iter_2.pth', 'iter_4.pth']
    assert 'resumed' in output.lower() and 'iter_4.pth' in output
    checkpoint = torch.load(work_dir / 'iter_6.pth', weights_only=True,
                            map_location='cpu')
    assert checkpoint['meta']['iter'] == 6
    assert 'Iter(train) [5/6]' in output and 'Iter(train) [1/6]' not in output


@pytest.fixture(scope='module')
def mmseg_tested(mmseg_trained, data_root, tmp_path_factory):
    """mIoU of MMSeg's own test.py on the trained checkpoint."""
    work_dir = tmp_path_factory.mktemp('mmseg_test')
    return _miou(_run(MMSEG_TOOLS / 'test.py', CONFIG,
                      mmseg_trained[0] / 'iter_6.pth', '--work-dir', work_dir,
                      '--cfg-options', *_data_options(data_root)))


def test_mmseg_test_tool_runs_a_users_config(mmseg_trained, mmseg_tested,
                                            data_root, tmp_path):
    """A user's own config (no _base_ of ours) that only imports the
    plugin gives the same mIoU through MMSeg's test.py."""
    cfg = read_config(CONFIG)
    assert cfg.custom_imports['imports'] == ['repvgg_seg']
    user_config = tmp_path / 'my_pspnet_repvgg.py'
    cfg.dump(str(user_config))
    assert '_base_' not in user_config.read_text()
    output = _run(MMSEG_TOOLS / 'test.py', user_config,
                  mmseg_trained[0] / 'iter_6.pth', '--work-dir',
                  tmp_path / 'work', '--cfg-options',
                  *_data_options(data_root), cwd=tmp_path)
    assert _miou(output) == mmseg_tested


def test_mmseg_inferencer_runs_our_model(mmseg_trained, data_root):
    from mmseg.apis import MMSegInferencer, inference_model, init_model
    checkpoint = str(mmseg_trained[0] / 'iter_6.pth')
    image = str(next((data_root / 'leftImg8bit' / 'val').rglob('*.png')))
    inferencer = MMSegInferencer(model=CONFIG, weights=checkpoint,
                                 device='cpu')
    labels = inferencer(image)['predictions']
    expected = inference_model(init_model(CONFIG, checkpoint, 'cpu'), image)
    assert np.array_equal(labels, expected.pred_sem_seg.data[0].numpy())
    assert labels.shape == (128, 256)


@pytest.fixture(scope='module')
def fused_with_training_config(mmseg_trained, data_root, tmp_path_factory):
    """Our tools/test.py on the fused checkpoint with the training config,
    painting into a relative --show-dir, run from another folder."""
    tmp = tmp_path_factory.mktemp('fused')
    fused = tmp / 'fused.pth'
    fuse_checkpoint(CONFIG, str(mmseg_trained[0] / 'iter_6.pth'), str(fused))
    run_dir = tmp / 'cwd'
    run_dir.mkdir()
    output = _run(REPO / 'tools/test.py', CONFIG, fused, '--work-dir',
                  tmp / 'work', '--show-dir', 'painted', '--cfg-options',
                  *_data_options(data_root), cwd=run_dir)
    return tmp, run_dir, output


def test_test_tool_takes_fused_checkpoint_with_training_config(
        fused_with_training_config, mmseg_tested):
    _, _, output = fused_with_training_config
    assert 'is fused: testing the fused structure' in output
    assert abs(_miou(output) - mmseg_tested) < 0.02


def test_show_dir_paints_every_image_under_the_work_dir(
        fused_with_training_config):
    tmp, run_dir, _ = fused_with_training_config
    painted = list((tmp / 'work' / 'painted').rglob('*.png'))
    assert len(painted) == 3  # every val image (MMSeg's hook: every 50th)
    assert not os.listdir(run_dir)  # nothing in the current folder
