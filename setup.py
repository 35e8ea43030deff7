from setuptools import find_packages, setup

setup(
    name='repvgg-seg',
    version='0.1.0',
    description='RepVGG backbones for MMSegmentation: real-time semantic '
    'segmentation of driving scenes, with exact re-parameterization.',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['repvgg_seg', 'repvgg_seg.*']),
    package_data={'repvgg_seg.datasets': ['imagenet_classes.txt']},
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
        'tests': ['pytest', 'onnx', 'onnxruntime', 'import-linter'],
    },
)
