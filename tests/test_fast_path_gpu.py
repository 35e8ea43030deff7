"""On a GPU only (skipped elsewhere; run on the device with
``python -m pytest -q tests/test_fast_path_gpu.py``): every fast-path
variant of every shipped PSPNet config, random weights with measured BN
statistics, agrees with the fp32 model of the same weights as well as the
plain path of its precision does (within 1 point), at an even and an odd
input size. It caught the fold that lost the head's ReLU under ``relu``."""
import glob
import os.path as osp

import pytest
import torch

from helpers import REPO_ROOT

from repvgg_seg.analysis.candidates import build_segmentor
from repvgg_seg.analysis.measure import labels_agree_pct, reference_labels
from repvgg_seg.analysis.variants import parse_variant
from repvgg_seg.deploy.fast_path import optimize_for_inference
from repvgg_seg.utils.config import read_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs a CUDA device')

CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'pspnet_*.py')))
#: The plain path of each precision, then what is checked against it.
PLAIN = {'fp16': 'fp16+cl+graph', 'bf16': 'bf16+cl+graph'}
VARIANTS = ['fp16+nchw+graph', 'fp16+cl+graph+relu', 'fp16+cl+graph+fold',
            'fp16+nchw+graph+relu+fold', 'fp16+cl+graph+relu+cpost+fold',
            'bf16+cl+graph+relu+cpost+fold']
SHAPES = [(512, 1024), (509, 1021)]
MAX_DROP = 1.0


def smooth_images(shape, count=2, seed=0):
    """uint8 BGR images of random blobs (fewer near-ties than noise)."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(count, 3, shape[0] // 32 + 1, shape[1] // 32 + 1,
                     generator=gen) * 255
    images = torch.nn.functional.interpolate(low, size=shape, mode='bicubic')
    return images.clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope='module', params=CONFIGS,
                ids=[osp.basename(c)[:-3] for c in CONFIGS])
def model_and_references(request):
    device = torch.device('cuda')
    model = build_segmentor(read_config(request.param), None, device,
                            (8, 3, 256, 512))
    cases = []
    for shape in SHAPES:
        images = smooth_images(shape)
        cases.append(([torch.from_numpy(i).to(device)[None] for i in images],
                      [reference_labels(model, i) for i in images]))
    yield model, cases
    torch.cuda.empty_cache()


def agreement(model, variant, cases):
    segmenter = optimize_for_inference(model, **parse_variant(variant))
    return [labels_agree_pct(segmenter, frames, refs)
            for frames, refs in cases]


def test_every_variant_agrees_as_well_as_the_plain_path(
        model_and_references):
    model, cases = model_and_references
    plain = {p: agreement(model, v, cases) for p, v in PLAIN.items()}
    report = {v: agreement(model, v, cases) for v in VARIANTS}
    print('\nplain', plain, '\nvariants', report)
    for variant, shares in report.items():
        reference = plain[variant.split('+')[0]]
        for shape, share, ref in zip(SHAPES, shares, reference):
            assert share >= ref - MAX_DROP, (
                f'{variant} at {shape}: {share:.2f} % of labels = fp32, '
                f'plain {ref:.2f} %')
    # the reference itself is sane (bf16 flips more near-ties: 89-99 %)
    assert min(plain['fp16']) > 95
