"""ONNX export: ``somanet.onnx.export(model, args, "model.onnx")`` writes a somanet model as an ONNX graph
that onnxruntime (or any ONNX runtime) can run.

    import somanet.onnx
    model = somanet.models.resnet18(num_classes=10).eval()
    x = somanet.randn(1, 3, 224, 224)
    somanet.onnx.export(model, (x,), "resnet18.onnx", input_names=["image"], output_names=["logits"],
                        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})

The exporter traces: it runs the model once on ``args`` (in eval mode, without gradients) and records
every somanet op it applies, then writes each op as ONNX nodes. Parameters and buffers become initializers
under their ``state_dict`` names; any other value the model reads without computing it during the trace
(a mask, position indices, a Python scalar) becomes a constant. Python control flow is followed as it ran:
the graph holds the path taken for these inputs.

``export(model, args, f=None, input_names=None, output_names=None, dynamic_axes=None, opset_version=17, *,
kwargs=None, keep_initializers_as_inputs=False, verbose=False, check=True)``

* ``args``: a Tensor or a tuple of the model's positional arguments (NumPy arrays are turned into
  tensors); a trailing dict, or ``kwargs``, holds keyword arguments. Each tensor argument is a graph
  input, named after the ``forward`` parameter it fills unless ``input_names`` says otherwise.
* ``f``: a path or a binary file object; None only returns the model.
* ``output_names``: names of the flattened outputs (a returned tuple, named tuple or dict is flattened in
  order, None entries skipped); default: the named tuple's fields, or ``output``, ``output_0`` ...
* ``dynamic_axes``: ``{name: {axis: dim_name}}`` or ``{name: [axes]}`` for inputs and outputs, as in
  PyTorch. The model is traced a second time with those input dimensions resized; sizes that follow
  them (reshape targets, slice ends, expanded shapes, filled or ``arange`` constants) are then computed
  from the input shapes at run time. A model whose ops or arguments change with the sizes in another way
  is refused with an ``ExportError`` that names the op.
* ``opset_version``: 13 to the newest the installed onnx knows; 17 (the default) writes LayerNorm as
  ``LayerNormalization``, 20 and newer write GELU as ``Gelu`` (before, its erf or tanh formula).
* ``check``: run ``onnx.checker.check_model`` on the result.

Returns the ``onnx.ModelProto``. Ops without an ONNX translation raise ``UnsupportedOperatorError``
naming the op and the module it ran in; ``supported_ops()`` lists the translated ones and
``register_op`` adds one. Needs the ``onnx`` package (``pip install 'somanet[onnx]'``).
"""
from ._graph import ExportError, UnsupportedOperatorError

__all__ = ["export", "ExportError", "UnsupportedOperatorError", "supported_ops", "register_op"]


def export(model, args, f=None, input_names=None, output_names=None, dynamic_axes=None, opset_version=17, **kwargs):
    """Trace ``model`` on ``args`` and write it to ``f`` as ONNX; see the module docstring."""
    from ._export import export as _export

    return _export(model, args, f, input_names, output_names, dynamic_axes, opset_version, **kwargs)


def supported_ops():
    """The names of the somanet ops (``Function`` classes) that ``export`` translates to ONNX."""
    from ._ops import supported_ops as _supported

    return _supported()


def register_op(op, handler=None):
    """Register an ONNX translation for a somanet op class (or its class name); see ``_ops.register_op``."""
    from ._ops import register_op as _register

    return _register(op, handler)
