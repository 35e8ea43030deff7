"""ImageNet-style classification with the RepVGG backbone, on CPU.

RepVGG-A0 is trained through tools/train.py on a generated 4-class folder
and evaluated through tools/test.py; the same test path (``configure_test``
+ the Runner, in-process to save start-up time) then evaluates it fused and
rewritten in the official and mmpretrain layouts. Plus tools/classify.py,
tools/extract_backbone.py, the classifier's losses and the data errors.
"""
import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import load_tool
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement

import repvgg_seg  # noqa: F401  (registers modules; mmcv-lite/torch compat)
from mmseg.registry import MODELS
from repvgg_seg.apis import build_runner, configure_test, load_runner_config
from repvgg_seg.classification import (DatasetLayoutError, ImageNetDataset,
                                       ImageReadError, RandomResizedCrop,
                                       ResizeEdge)
from repvgg_seg.models.checkpoints import to_layout
from tiny_imagenet import make_tiny_imagenet

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / 'configs/imagenet/repvgg_a0_tinyimagenet.py')
EPOCHS = 6
WNIDS = [f'n{i:08d}' for i in range(4)]
TINY_ARCH = dict(num_blocks=(1, 1, 1, 1), width_factor=(0.25, 0.25, 0.25, 0.5))


def _cli(name, *args):
    result = subprocess.run(
        [sys.executable, f'tools/{name}', *map(str, args)], cwd=REPO,
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout + result.stderr


def _logged(output, metric):
    """The last value of ``metric`` the runner logged."""
    return float(re.findall(rf'accuracy/{metric}: ([\d.]+)', output)[-1])


def _data_options(root, *splits):
    return {f'{s}_dataloader.dataset.data_root': str(root) for s in splits}


def _test(root, config, checkpoint, work_dir):
    """Top-1 as ``tools/test.py`` computes it, without its start-up."""
    cfg = load_runner_config(str(config), _data_options(root, 'test'),
                             str(work_dir))
    configure_test(cfg, str(checkpoint))
    return build_runner(cfg).test()['accuracy/top1']


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny_imagenet')
    make_tiny_imagenet(root, num_classes=4, train_per_class=20,
                       val_per_class=10, size=64, seed=0)
    return root


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_root):
    """``(checkpoint, validation top-1)`` of one training run."""
    work_dir = tmp_path_factory.mktemp('train')
    output = _cli('train.py', CONFIG, '--work-dir', work_dir, '--cfg-options',
                  *[f'{k}={v}' for k, v in
                    _data_options(data_root, 'train', 'val').items()])
    return work_dir / f'epoch_{EPOCHS}.pth', _logged(output, 'top1')


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def _classifier(checkpoint=None, **kwargs):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(dict(model=kwargs))
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        model.load_state_dict(_load(checkpoint)['state_dict'])
    return model


def test_training_learns_the_classes(trained):
    checkpoint, top1 = trained
    assert top1 > 80  # chance is 25
    meta = _load(checkpoint)['meta']
    assert list(meta['dataset_meta']['classes']) == WNIDS


def test_test_tool_and_fused_model_give_the_same_accuracy(
        trained, data_root, tmp_path):
    checkpoint, top1 = trained
    output = _cli('test.py', CONFIG, checkpoint, '--work-dir', tmp_path,
                  '--cfg-options', f'test_dataloader.dataset.data_root='
                  f'{data_root}')
    assert _logged(output, 'top1') == top1
    assert _logged(output, 'top5') == 100  # 4 classes
    fused = tmp_path / 'fused.pth'
    load_tool('fuse').main([CONFIG, str(checkpoint), str(fused)])
    assert _test(data_root, tmp_path / 'fused.py', fused, tmp_path) == top1


# three Runners of one config in this process: one started in the same
# second as the one before shares mmengine's instances named after it
@pytest.mark.filterwarnings('ignore:.* instance named of .* has been '
                            'created:UserWarning:mmengine')
@pytest.mark.parametrize('layout,fused', [('official', False),
                                          ('official', True),
                                          ('mmpretrain', False)])
def test_foreign_checkpoint_layouts_evaluate_the_same(
        trained, data_root, tmp_path, layout, fused):
    checkpoint, top1 = trained
    model = _classifier(checkpoint).eval()
    if fused:
        model.switch_to_deploy()
    state = model.state_dict()
    backbone = {k[len('backbone.'):]: v for k, v in state.items()
                if k.startswith('backbone.')}
    foreign = to_layout(backbone, layout)
    head = 'linear.' if layout == 'official' else 'head.fc.'
    foreign.update({head + k.split('.')[-1]: v for k, v in state.items()
                    if k.startswith('head.fc.')})
    path = tmp_path / f'{layout}.pth'
    torch.save(foreign if layout == 'official' else dict(state_dict=foreign),
               path)
    assert _test(data_root, CONFIG, path, tmp_path) == top1


def test_classify_names_the_class_of_training_images(
        trained, data_root, capsys):
    images = [sorted((data_root / 'train' / w).iterdir())[0] for w in WNIDS]
    load_tool('classify').main(
        [CONFIG, str(trained[0]), *map(str, images), '--topk', '3'])
    output = capsys.readouterr().out
    best = re.findall(r'^  1\. (\S+)  ([\d.]+)$', output, re.MULTILINE)
    assert len(best) == 4
    # 3 of 4: one borderline image must not fail the test
    assert sum(name == wnid for (name, _), wnid in zip(best, WNIDS)) >= 3
    assert len(re.findall(r'^  [123]\. n\d{8}  [\d.]+$', output,
                          re.MULTILINE)) == 12


def test_extracted_backbone_initialises_a_segmentation_backbone(
        trained, tmp_path):
    out = tmp_path / 'backbone' / 'repvgg_a0.pth'
    load_tool('extract_backbone').main([str(trained[0]), str(out)])
    saved = _load(out)
    assert saved['meta']['arch'] == 'A0'
    assert all(k.startswith(('stem.', 'stage_')) for k in saved['state_dict'])
    cfg = Config.fromfile(REPO / 'configs/pspnet_repvgg_a0.py').model.backbone
    cfg.update(norm_cfg=dict(type='BN', requires_grad=True),
               init_cfg=dict(type='Pretrained', checkpoint=str(out)))
    backbone = MODELS.build(cfg)
    backbone.init_weights()
    trained_state = _load(trained[0])['state_dict']
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, trained_state[f'backbone.{key}']), key


# ---- the classifier on its own (a tiny custom arch: fast) --------------


def _tiny_classifier(deploy=False, **kwargs):
    # a fresh dict each time: merging consumes ``_delete_``
    return _classifier(backbone=dict(arch=dict(TINY_ARCH, _delete_=True),
                                     deploy=deploy), **kwargs)


def _batch(num=4, size=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (3, size, size), generator=gen,
                            dtype=torch.uint8) for _ in range(num)]
    samples = [BaseDataElement(gt_label=torch.tensor(i % 4))
               for i in range(num)]
    return dict(inputs=inputs, data_samples=samples)


def test_mixup_and_label_smoothing_apply_to_the_training_loss_only():
    torch.manual_seed(0)
    plain = _tiny_classifier()
    extra = _tiny_classifier(head=dict(label_smoothing=0.1), mixup_alpha=0.2)
    extra.load_state_dict(plain.state_dict())
    data = plain.data_preprocessor(_batch(), training=True)
    with torch.no_grad():
        preds = [m.eval()(**copy.deepcopy(data), mode='predict')
                 for m in (plain, extra)]
    for a, b in zip(*preds):
        assert torch.equal(a.pred_score, b.pred_score)
        assert a.pred_label == a.pred_score.argmax()
    losses = [m.train()(**data, mode='loss')['loss'] for m in (plain, extra)]
    assert all(torch.isfinite(loss) for loss in losses)
    assert losses[0] != losses[1]


def test_fused_weights_switch_a_training_classifier_and_refuse_training():
    source = _tiny_classifier().eval()
    for m in source.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
    data = source.data_preprocessor(_batch(), training=False)
    expected = source(data['inputs'])
    source.switch_to_deploy()
    target = _tiny_classifier()
    target.load_state_dict(source.state_dict())
    assert target.backbone.deploy
    torch.testing.assert_close(target.eval()(data['inputs']), expected,
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError, match='deploy-form'):
        target.train()(**data, mode='loss')


def test_training_weights_are_fused_into_a_deploy_classifier():
    source = _tiny_classifier().eval()
    inputs = torch.randn(2, 3, 32, 32)
    target = _tiny_classifier(deploy=True).eval()
    target.load_state_dict(source.state_dict())
    torch.testing.assert_close(target(inputs), source(inputs), rtol=1e-4,
                               atol=1e-5)


# ---- data ----------------------------------------------------------------


def test_transforms_follow_torchvision_sizes():
    img = np.zeros((50, 100, 3), np.uint8)
    assert ResizeEdge(25)(dict(img=img))['img'].shape == (25, 50, 3)
    assert ResizeEdge(40, edge='long')(dict(img=img))['img'].shape == (
        20, 40, 3)
    np.random.seed(0)
    out = RandomResizedCrop((24, 16))(dict(img=img))
    assert out['img'].shape == (16, 24, 3) and out['img_shape'] == (16, 24)


def _dataset(root, split='train', **kwargs):
    init_default_scope('mmseg')  # the pipeline is built from mmseg's registry
    return ImageNetDataset(
        data_root=str(root), data_prefix=dict(img_path=split),
        pipeline=[dict(type='LoadCheckedImageFromFile'),
                  dict(type='PackClsInputs')], **kwargs)


def test_dataset_reads_folders_and_annotation_lists(data_root, tmp_path):
    dataset = _dataset(data_root, 'val')
    assert len(dataset) == 40 and dataset.metainfo['classes'] == tuple(WNIDS)
    sample = dataset[15]['data_samples']
    assert sample.gt_label.item() == 1 and WNIDS[1] in sample.img_path
    # a flat folder with "name label" lines and class names from a file
    flat = tmp_path / 'flat'
    (flat / 'val').mkdir(parents=True)
    lines = []
    for label, wnid in enumerate(WNIDS):
        src = sorted((data_root / 'val' / wnid).iterdir())[0]
        (flat / 'val' / src.name).write_bytes(src.read_bytes())
        lines.append(f'{src.name} {label}')
    (flat / 'val.txt').write_text('\n'.join(lines) + '\n')
    (flat / 'names.txt').write_text('\n'.join('abcd') + '\n')
    dataset = _dataset(flat, 'val', ann_file='val.txt',
                       metainfo=dict(classes=str(flat / 'names.txt')))
    assert dataset.metainfo['classes'] == tuple('abcd')
    assert [dataset[i]['data_samples'].gt_label.item()
            for i in range(4)] == [0, 1, 2, 3]
    (flat / 'val.txt').write_text('a.JPEG 0\nb.JPEG seven\n')
    with pytest.raises(DatasetLayoutError, match=r'val\.txt:2'):
        _dataset(flat, 'val', ann_file='val.txt',
                 metainfo=dict(classes=['a', 'b']))


def test_unreadable_images_raise_naming_the_file(data_root, tmp_path):
    root = tmp_path / 'bad'
    (root / 'train' / 'n0').mkdir(parents=True)
    good = sorted((data_root / 'train' / WNIDS[0]).iterdir())[0].read_bytes()
    files = {'truncated.JPEG': good[:len(good) // 2],
             'garbage.JPEG': b'not an image at all'}
    for name, content in files.items():
        (root / 'train' / 'n0' / name).write_bytes(content)
    dataset = _dataset(root)
    for i in range(len(dataset)):
        path = dataset.get_data_info(i)['img_path']
        with pytest.raises(ImageReadError, match=re.escape(path)):
            dataset[i]


def test_bad_layouts_raise_naming_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=re.escape(str(tmp_path / 'missing' / 'train'))):
        _dataset(tmp_path / 'missing')
    (tmp_path / 'train' / 'n0').mkdir(parents=True)
    (tmp_path / 'train' / 'n1').mkdir()
    (tmp_path / 'train' / 'n0' / 'a.JPEG').write_bytes(b'')
    (tmp_path / 'train' / 'n1' / 'notes.txt').write_text('no images')
    with pytest.raises(DatasetLayoutError,
                       match=re.escape(str(tmp_path / 'train' / 'n1'))):
        _dataset(tmp_path)



def test_imagenet_1k_annotation_list_gets_the_1000_class_names(tmp_path):
    from repvgg_seg.classification import IMAGENET_CLASSES, ImageNetDataset
    (tmp_path / 'val').mkdir()
    (tmp_path / 'val.txt').write_text('a.JPEG 0\nb.JPEG 999\n')
    dataset = ImageNetDataset(data_root=str(tmp_path), ann_file='val.txt',
                              data_prefix=dict(img_path='val'),
                              lazy_init=False, serialize_data=False)
    assert len(IMAGENET_CLASSES) == 1000 and IMAGENET_CLASSES[0] == 'tench'
    assert dataset.metainfo['classes'] == IMAGENET_CLASSES
    assert [d['gt_label'] for d in dataset.load_data_list()] == [0, 999]
