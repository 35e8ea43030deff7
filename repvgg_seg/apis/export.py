"""Export a trained model from its config and checkpoint to ONNX."""
from ..deploy.onnx_export import ExportError, export_onnx as export_model
from ..utils.files import same_file
from .inference import init_model


def export_onnx(config, checkpoint, out, **options):
    """Load ``config`` + ``checkpoint`` (training or fused form) and export
    the fused model to ``out`` (see :func:`~..deploy.onnx_export.
    export_onnx` for ``options``); return what was checked."""
    for name, path in (('config', config), ('checkpoint', checkpoint)):
        if same_file(out, path):
            raise ExportError(f'the output {out} would overwrite the input '
                              f'{name}: choose another output path')
    return export_model(init_model(config, checkpoint), out, **options)
