"""The benchmark's names for fast-path variants (``tools/benchmark.py
--fast-path fp16+cl+graph+relu``): a precision and flags, translated to the
plain keyword options of :class:`~repvgg_seg.deploy.fast_path.FastSegmenter`.
"""
from ..deploy.fast_path import DTYPES
from ..utils.errors import InvalidArgument

#: Options of a variant before its flags: a variant string means the same
#: whatever the defaults of the fast path become.
VARIANT_BASE = dict(channels_last=True, cuda_graph=True, cudnn_benchmark=True,
                    fuse_relu=False, compile_postprocess=False,
                    fold_psp=False, compile_mode=None)
#: Variant flags -> :class:`FastSegmenter` keyword arguments.
VARIANT_FLAGS = {
    'cl': dict(channels_last=True),
    'nchw': dict(channels_last=False),
    'graph': dict(cuda_graph=True),
    'eager': dict(cuda_graph=False),
    'nobench': dict(cudnn_benchmark=False),
    'relu': dict(fuse_relu=True),
    'cpost': dict(compile_postprocess=True),
    'fold': dict(fold_psp=True),
    'compile': dict(compile_mode='default'),
}


def parse_variant(text):
    """``'fp16+cl+graph+relu'`` -> :class:`FastSegmenter` keyword arguments:
    a precision (``fp32``, ``tf32``, ``fp16``, ``bf16``; ``-autocast`` keeps
    fp32 weights under autocast) and flags of :data:`VARIANT_FLAGS` applied
    to :data:`VARIANT_BASE` (flags not named are off)."""
    precision, *flags = text.split('+')
    kwargs = dict(VARIANT_BASE, autocast=precision.endswith('-autocast'),
                  precision=precision.removesuffix('-autocast'))
    if kwargs['precision'] not in DTYPES:
        raise InvalidArgument(f'unknown precision {precision!r} in variant '
                              f'{text!r}; choose from {sorted(DTYPES)}')
    for flag in flags:
        if flag not in VARIANT_FLAGS:
            raise InvalidArgument(f'unknown flag {flag!r} in variant '
                                  f'{text!r}; choose from '
                                  f'{sorted(VARIANT_FLAGS)}')
        kwargs.update(VARIANT_FLAGS[flag])
    return kwargs


def variant_name(options):
    """The canonical string of complete :class:`FastSegmenter` options
    (as :func:`parse_variant` returns them): layout, graph, flags on."""
    parts = [options['precision'] + ('-autocast' if options['autocast']
                                     else ''),
             'cl' if options['channels_last'] else 'nchw',
             'graph' if options['cuda_graph'] else 'eager']
    parts += [flag for flag, flag_options in VARIANT_FLAGS.items()
              if flag not in ('cl', 'nchw', 'graph', 'eager')
              and all(options[k] == v for k, v in flag_options.items())]
    return '+'.join(parts)


#: Flags that transform the model (the rest only choose how it runs): a
#: variant is checked against the same variant without them.
TRANSFORM_FLAGS = ('relu', 'cpost', 'fold', 'compile')


def plain_variant(options):
    """The canonical name of ``options`` without :data:`TRANSFORM_FLAGS`:
    the same precision, layout and graph, nothing else (the reference a
    variant's labels must agree with fp32 as well as)."""
    plain = dict(options)
    for flag in TRANSFORM_FLAGS:
        plain.update({key: VARIANT_BASE[key] for key in VARIANT_FLAGS[flag]})
    return variant_name(plain)
