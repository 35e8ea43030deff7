import os.path as osp

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

#: Makes every interpreter install repvgg_seg_hook's finder at start-up, so
#: mmseg imports on mmcv-lite without importing repvgg_seg first.
HOOK_PTH = 'repvgg_seg_hook.pth'
HERE = osp.dirname(osp.abspath(__file__))


class build_py_with_pth(build_py):
    """Wheels: the .pth goes to the root of build_lib, i.e. site-packages."""

    def run(self):
        super().run()
        self.copy_file(osp.join(HERE, HOOK_PTH),
                       osp.join(self.build_lib, HOOK_PTH))


class editable_wheel_with_pth(editable_wheel):
    """``pip install -e``: the editable wheel holds no build_lib files, so the
    .pth is written into it next to setuptools' own ``__editable__`` one."""

    def _select_strategy(self, name, tag, build_lib):
        strategy = super()._select_strategy(name, tag, build_lib)

        class WithHookPth:
            def __enter__(self):
                strategy.__enter__()
                return self

            def __exit__(self, *exc):
                return strategy.__exit__(*exc)

            def __call__(self, wheel, files, mapping):
                strategy(wheel, files, mapping)
                wheel.write(osp.join(HERE, HOOK_PTH), HOOK_PTH)

        return WithHookPth()


setup(
    name='repvgg-seg',
    version='0.1.0',
    description='RepVGG backbones for MMSegmentation: real-time semantic '
    'segmentation of driving scenes, with exact re-parameterization.',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['repvgg_seg', 'repvgg_seg.*']),
    py_modules=['repvgg_seg_hook', 'repvgg_seg_cli'],
    cmdclass=dict(build_py=build_py_with_pth,
                  editable_wheel=editable_wheel_with_pth),
    package_data={'repvgg_seg.classification': ['imagenet_classes.txt']},
    python_requires='>=3.10',
    # mmcv is deliberately not a hard requirement: pick exactly one form with
    # an extra (``[lite]``, the default route) or build full mmcv yourself,
    # so that lite is never installed on top of a full mmcv.
    install_requires=[
        'torch>=2.1',
        # mmengine's config loader imports pkg_resources (gone in setuptools 81)
        'setuptools<81',
        'mmengine>=0.10.0,<0.11',
        'mmsegmentation==1.2.2',
        'cityscapesscripts>=2.2',
        'opencv-python-headless',
        'numpy',
        'matplotlib',
        'ftfy',
        'regex',
    ],
    extras_require={
        'lite': ['mmcv-lite>=2.1.0,<2.2.0'],
        'full': ['mmcv>=2.1.0,<2.2.0'],
        'export': ['onnx', 'onnxruntime'],
        # H.264 overlay videos (FFmpeg with libx264 in its wheels)
        'video': ['av'],
        'tests': ['pytest', 'onnx', 'onnxruntime', 'import-linter'],
    },
)
