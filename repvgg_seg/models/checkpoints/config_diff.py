"""Compare the model config a checkpoint was trained with (saved by the
Runner in ``meta['cfg']``) with the config it is loaded into: strides and
dilations change no tensor shape, so only this comparison catches them."""
import ast

#: Model settings that change how a network was initialised or trained, or
#: how it is run, but not the trained network itself; ``deploy`` (training or
#: fused form) is checked on the weights themselves (a fused file of a
#: network trained in training form records ``deploy=False``).
NOT_STRUCTURAL = frozenset({
    '_scope_', 'init_cfg', 'pretrained', 'train_cfg', 'test_cfg', 'deploy',
    'data_preprocessor', 'loss_decode', 'loss', 'sampler', 'with_cp',
    'frozen_stages', 'norm_eval', 'requires_grad', 'dropout_ratio',
    'label_smoothing', 'mixup_alpha'
})


def _literal(node):
    """Value of a config expression made of literals and ``dict(...)``."""
    if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == \
            'dict' and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v)
                for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)  # ValueError for anything else


def trained_model_cfg(checkpoint):
    """The ``model`` config the Runner saved in ``meta['cfg']``, read
    without running that text (it is code, from the checkpoint file)."""
    text = checkpoint.get('meta', {}).get('cfg')
    try:
        for node in ast.parse(text).body:
            if isinstance(node, ast.Assign) and [
                    getattr(t, 'id', None) for t in node.targets] == ['model']:
                return _literal(node.value)
    except (SyntaxError, TypeError, ValueError):
        pass
    return None


def config_differences(trained, current, path='model'):
    """``'key: checkpoint A vs config B'`` for each structural setting that
    differs (SyncBN and BN count as one: same weights)."""
    if isinstance(trained, dict) and isinstance(current, dict):
        for key in sorted(set(trained) | set(current), key=str):
            if key not in NOT_STRUCTURAL:
                yield from config_differences(
                    trained.get(key), current.get(key), f'{path}.{key}')
    elif isinstance(trained, (list, tuple)) and isinstance(
            current, (list, tuple)) and len(trained) == len(current) and any(
                isinstance(item, dict) for item in current):
        for i, (a, b) in enumerate(zip(trained, current)):
            yield from config_differences(a, b, f'{path}[{i}]')
    elif _comparable(trained) != _comparable(current):
        yield (f'{path}: checkpoint {_comparable(trained)} vs config '
               f'{_comparable(current)}')


def _comparable(value):
    """Tuples as lists (the saved text and the config differ there), and
    SyncBN as BN (same weights)."""
    if isinstance(value, (list, tuple)):
        return [_comparable(item) for item in value]
    return 'BN' if value == 'SyncBN' else value
