"""Read configs with errors that name the file (a config is Python the user
wrote: any failure in it is theirs to fix, not a traceback).

A ``.py`` config is code by design; a YAML or JSON config is data and runs
no code, bases included: YAML is read with PyYAML's safe loader (mmengine's
own reader would build any ``!!python/...`` object the file names), its
aliases may not expand without bound, a data config may not inherit a
``.py`` base, ``custom_imports`` any module but this plugin nor name a
``type`` that is no registered class (mmengine would import and call
it), and the
pairs MMSeg's transforms take only as tuples (``scale``, ``crop_size``...)
are read as tuples, as a ``.py`` config writes them.
"""
import copy
import importlib
import os.path as osp
from contextlib import contextmanager

import yaml
from mmengine.config import Config
from mmengine.fileio.handlers import JsonHandler, YamlHandler, file_handlers
from mmengine.hub import get_config

from .errors import ConfigError, PathNotFound

SafeLoader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
DATA_CONFIG_EXTENSIONS = ('.yaml', '.yml', '.json')
#: The most values a YAML config may expand to through its aliases (a real
#: config has a few hundred; a "billion laughs" file has 10**9).
MAX_YAML_VALUES = 100_000
#: The only module a data config's ``custom_imports`` may name (with its
#: submodules): this plugin, which the project's own configs import.
PLUGIN = 'repvgg_seg'
#: Keys whose ``[a, b]`` value MMSeg's and mmcv's transforms accept only as
#: a tuple, which JSON cannot write.
PAIR_KEYS = frozenset({'scale', 'scales', 'crop_size', 'img_scale',
                       'ratio_range', 'scale_factor', 'size', 'stride'})


class DataLoader(SafeLoader):
    """PyYAML's safe loader, plus ``!!python/tuple`` (plain data, which
    mmengine writes when it dumps a config to YAML)."""


DataLoader.add_constructor(
    'tag:yaml.org,2002:python/tuple',
    lambda loader, node: tuple(loader.construct_sequence(node)))


def _expanded_size(node, sizes, open_nodes):
    """How many values ``node`` holds once its aliases are copied out (an
    alias is the node it names, so shared nodes are counted once each
    time they appear, and computed once)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise ConfigError('a YAML alias refers to a node that holds it '
                          '(a config cannot contain itself)')
    open_nodes.add(key)
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = ()
    sizes[key] = 1 + sum(_expanded_size(child, sizes, open_nodes)
                         for child in children)
    open_nodes.discard(key)
    return sizes[key]


def _load_yaml_data(stream):
    """The data of a YAML document, refused in one line if it asks for a
    Python object or expands beyond :data:`MAX_YAML_VALUES` values."""
    loader = DataLoader(stream)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, set()) > MAX_YAML_VALUES:
            raise ConfigError(
                f'a YAML config expands through its aliases (*name) to more '
                f'than {MAX_YAML_VALUES} values; refusing it (a real config '
                'holds a few hundred: write the values out, or fewer '
                'nested aliases)')
        return loader.construct_document(node)
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else '?'
        raise ConfigError(
            f'a YAML config holds only data, but line {line} asks for '
            f'a Python object ({exc.problem}); refusing to build it '
            '(a .py config is code, a YAML one is not)') from None
    finally:
        loader.dispose()


def _pairs_as_tuples(node):
    """``node`` with every ``[a, b]`` of numbers (or list of them) under a
    key of :data:`PAIR_KEYS` made a tuple, in place."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in PAIR_KEYS:
                node[key] = _as_pairs(value)
            _pairs_as_tuples(node[key])
    elif isinstance(node, (list, tuple)):
        for value in node:
            _pairs_as_tuples(value)
    return node


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_pairs(value):
    if isinstance(value, list) and len(value) == 2 and \
            all(map(_is_number, value)):
        return tuple(value)
    if isinstance(value, list) and value and all(
            isinstance(item, list) for item in value):
        return [_as_pairs(item) for item in value]
    return value


class DataYamlHandler(YamlHandler):
    """mmengine's YAML reader restricted to plain data."""

    def load_from_fileobj(self, file, **kwargs):
        return _pairs_as_tuples(_load_yaml_data(file))


class DataJsonHandler(JsonHandler):
    """mmengine's JSON reader, with the pairs transforms need as tuples."""

    def load_from_fileobj(self, file, **kwargs):
        return _pairs_as_tuples(super().load_from_fileobj(file, **kwargs))


def _is_data_config(path):
    return osp.splitext(str(path))[1] in DATA_CONFIG_EXTENSIONS


def _check_data_imports(cfg_dict, path):
    """A data config may import this plugin only (``custom_imports``)."""
    custom = cfg_dict.get('custom_imports')
    if custom is None:
        return
    names = custom.get('imports') if isinstance(custom, dict) else custom
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, (list, tuple)) or not all(
            isinstance(name, str) and (name == PLUGIN or name.startswith(
                f'{PLUGIN}.')) for name in names):
        raise ConfigError(
            f'{path} is a data config (YAML/JSON) and its custom_imports '
            f'names {names!r}: a data config runs no code, so it may import '
            f'only {PLUGIN}; import other modules from a .py config you '
            'trust')


def _scoped_registries(scope):
    """mmengine's registries of the OpenMMLab ``scope`` (``mmengine``,
    ``mmseg``...), their modules registered."""
    from mmengine.config.utils import MODULE2PACKAGE
    from mmengine.registry import Registry, root
    if scope in MODULE2PACKAGE:  # OpenMMLab's scopes only: importing any
        try:                     # other package would run its code
            importlib.import_module(f'{scope}.registry')
        except ImportError:
            return []
    elif scope != 'mmengine':
        return []
    found = []
    for registry in vars(root).values():
        if isinstance(registry, Registry):
            child = registry if scope == 'mmengine' else \
                registry._children.get(scope)
            if child is not None:
                child.import_from_location()
                found.append(child)
    return found


def _dotted_types(node):
    if isinstance(node, dict):
        kind = node.get('type')
        if isinstance(kind, str) and '.' in kind:
            yield kind
        node = list(node.values())
    if isinstance(node, (list, tuple)):
        for value in node:
            yield from _dotted_types(value)


def _check_data_types(cfg_dict, path):
    """A data config's ``type: scope.Name`` must name a registered class:
    for any other dotted name mmengine imports the name and calls it
    (``type: os.system`` would run a command)."""
    for kind in _dotted_types(cfg_dict):
        scope, _, name = kind.rpartition('.')
        if not any(name in registry._module_dict
                   for registry in _scoped_registries(scope)):
            raise ConfigError(
                f'{path} is a data config (YAML/JSON) and names type '
                f'{kind!r}, which is no registered class of scope {scope!r}: '
                'a data config runs no code, so a dotted type must be '
                'SCOPE.Name of a registered class (e.g. mmseg.PSPHead); '
                'name other callables from a .py config you trust')


@contextmanager
def _data_stays_data():
    """Inside the block mmengine reads every YAML/JSON config as data: the
    handlers above, and no ``.py`` base, foreign ``custom_imports`` or
    unregistered dotted ``type`` in a data config (checked where mmengine
    reads each file of the ``_base_`` chain, after its ``{{...}}``
    substitutions)."""
    saved = {ext: file_handlers[ext] for ext in ('yaml', 'yml', 'json')}
    read_file = Config.__dict__['_file2dict']
    readers = []  # the chain of configs being read, outermost first

    def file2dict(filename, *args, **kwargs):
        if readers and _is_data_config(readers[-1]) and \
                not _is_data_config(filename):
            raise ConfigError(
                f'{readers[-1]} is a data config (YAML/JSON) but its _base_ '
                f'names {filename}, which is Python code: a data config runs '
                'no code, so its bases must be YAML/JSON too (or write it '
                'as a .py config you trust)')
        readers.append(filename)
        try:
            cfg_dict, *rest = read_file.__func__(filename, *args, **kwargs)
        finally:
            readers.pop()
        if _is_data_config(filename):
            _check_data_imports(cfg_dict, filename)
            _check_data_types(cfg_dict, filename)
        return (cfg_dict, *rest)

    file_handlers.update(dict.fromkeys(('yaml', 'yml'), DataYamlHandler()))
    file_handlers['json'] = DataJsonHandler()
    Config._file2dict = staticmethod(file2dict)
    try:
        yield
    finally:
        Config._file2dict = read_file
        file_handlers.update(saved)


def read_config(config, cfg_options=None):
    """A :class:`Config` from a path (``mmseg::`` paths too, resolved by
    mmengine) or a copy of a ``Config``, with ``--cfg-options`` merged."""
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        path = str(config)
        if '::' not in path and osp.isdir(path):
            raise ConfigError(f'config {path} is a folder: give the config '
                              'file (.py, .yaml or .json)')
        if '::' not in path and not osp.isfile(path):
            raise PathNotFound(f'config {path} does not exist')
        try:
            with _data_stays_data():
                cfg = (get_config(path) if '::' in path
                       else Config.fromfile(path))
        except ConfigError as exc:
            raise ConfigError(f'cannot read config {path}: {exc}') from None
        except Exception as exc:  # noqa: B902 (see the module docstring)
            raise ConfigError(f'cannot read config {path} '
                              f'({type(exc).__name__}: {exc})') from None
    if cfg_options:
        check_option_types(cfg, cfg_options)
        try:
            cfg.merge_from_dict(cfg_options)
        except Exception as exc:  # noqa: B902
            raise ConfigError(f'cannot apply --cfg-options to {config} '
                              f'({type(exc).__name__}: {exc})') from None
    return cfg


def _value_at(cfg, dotted):
    node = cfg
    for part in dotted.split('.'):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _kind(value):
    """What a number or switch in a config must stay: mmengine and torch
    compare and compute with them deep inside (a traceback), while a string
    in their place is nearly always a typo."""
    if isinstance(value, bool):
        return 'True or False', lambda new: isinstance(new, bool)
    if isinstance(value, int):
        return 'an integer', lambda new: isinstance(new, int) and \
            not isinstance(new, bool)
    if isinstance(value, float):
        return 'a number', lambda new: isinstance(new, (int, float)) and \
            not isinstance(new, bool)
    return None, None


def check_option_types(cfg, cfg_options):
    """Refuse, in one line, a ``--cfg-options`` value that is not a number
    (or not True/False) where the config holds one; None always passes
    (it switches a setting off)."""
    values = cfg.to_dict()
    for key, new in cfg_options.items():
        old = _value_at(values, key)
        what, fits = _kind(old)
        if what and new is not None and not fits(new):
            raise ConfigError(f'--cfg-options {key}={new!r}: the config has '
                              f'{old!r} there: give {what}')


def test_pipeline_of(cfg):
    """The config's test pipeline (a list of transform dicts), where MMSeg
    configs keep it: ``test_pipeline`` or the test data set's."""
    return cfg.get('test_pipeline') or cfg.test_dataloader.dataset.pipeline
