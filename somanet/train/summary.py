"""``summary(model, input_shape)``: a table of layers, output shapes, parameter counts and memory.

It runs one forward pass on zeros (in eval mode, without recording a graph) with a forward hook on
every submodule, so the shapes are the real ones. The activation memory estimate is the size of every
leaf module's output for the given batch size: what a training forward pass keeps for backward, to
within the few arrays some layers save besides their output.
"""
import numpy as np

from ..autograd import grad_mode
from ..autograd.tensor import Tensor

__all__ = ["summary", "ModelSummary"]


def _shapes(out):
    if isinstance(out, Tensor):
        return [tuple(out.shape)], out.array.nbytes
    if isinstance(out, np.ndarray):
        return [tuple(out.shape)], out.nbytes
    if isinstance(out, (list, tuple)):
        shapes, total = [], 0
        for o in out:
            s, b = _shapes(o)
            shapes.extend(s)
            total += b
        return shapes, total
    if isinstance(out, dict):
        return _shapes(list(out.values()))
    return [], 0


def _fmt_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024


class ModelSummary:
    """The result of ``summary``: ``rows`` (one dict per submodule) and totals; ``str()`` is the table.

    Attributes: ``total_params``, ``trainable_params``, ``frozen_params``, ``frozen_modules`` (the
    largest submodules whose parameters are all frozen), ``param_bytes``,
    ``activation_bytes`` (leaf outputs for ``batch_size`` samples), ``input_shape``, ``batch_size``.
    """

    def __init__(self, model_name, rows, input_shape, batch_size, total, trainable, param_bytes, activation_bytes,
                 input_bytes, output_shapes, frozen_modules=()):
        self.model_name = model_name
        self.rows = rows
        self.input_shape = input_shape
        self.batch_size = batch_size
        self.total_params = total
        self.trainable_params = trainable
        self.frozen_params = total - trainable
        self.frozen_modules = list(frozen_modules)
        self.param_bytes = param_bytes
        self.activation_bytes = activation_bytes
        self.input_bytes = input_bytes
        self.output_shapes = output_shapes

    def __str__(self):
        header = ("Layer (type)", "Output shape", "Param #", "Trainable")
        lines = [(("  " * (r["depth"] - 1)) + f"{r['name']} ({r['type']})",
                  ", ".join(str(list(s)) for s in r["output_shapes"]) or "--",
                  f"{r['params']:,}" if r["params"] else "--",
                  "--" if not r["params"] else ("yes" if r["trainable"] == r["params"] else
                                               ("no" if r["trainable"] == 0 else f"{r['trainable']:,}")))
                 for r in self.rows]
        widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
        rule = "=" * (sum(widths) + 3 * (len(widths) - 1))

        def row(cells):
            return "   ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        out = [f"Model: {self.model_name}", rule, row(header), rule]
        out += [row(line) for line in lines]
        out += [rule,
                f"Input shape: {[self.batch_size, *self.input_shape]}",
                f"Total params: {self.total_params:,}",
                f"Trainable params: {self.trainable_params:,}",
                f"Frozen params: {self.frozen_params:,}"
                + (f" (frozen: {_frozen_list(self.frozen_modules)})" if self.frozen_modules else ""),
                f"Params size: {_fmt_bytes(self.param_bytes)}",
                f"Estimated activation memory (batch {self.batch_size}): {_fmt_bytes(self.activation_bytes)}",
                f"Input size: {_fmt_bytes(self.input_bytes)}",
                rule]
        return "\n".join(out)

    def __repr__(self):
        return (f"ModelSummary({self.model_name}, total_params={self.total_params}, "
                f"trainable_params={self.trainable_params}, activation_bytes={self.activation_bytes})")


def _frozen_list(names, limit=8):
    """``a, b, c`` with runs of numbered siblings shortened (``encoder.layer.0-3``)."""
    runs = []
    for name in names:
        base, _, idx = name.rpartition(".")
        if runs and idx.isdigit() and runs[-1][0] == base and runs[-1][2] == int(idx) - 1:
            runs[-1][2] = int(idx)
        else:
            runs.append([base, int(idx) if idx.isdigit() else None, int(idx) if idx.isdigit() else None, name])
    parts = [r[3] if r[1] is None or r[1] == r[2] else f"{r[0]}.{r[1]}-{r[2]}" for r in runs]
    return ", ".join(parts[:limit]) + (f", ... ({len(parts) - limit} more)" if len(parts) > limit else "")


def _frozen_modules(model):
    out = []
    for name, module in model.named_modules():
        if not name or any(name == f or name.startswith(f + ".") for f in out):
            continue
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            out.append(name)
    return out


def summary(model, input_shape, batch_size=1, dtype=None):
    """Describe ``model`` layer by layer for inputs of ``input_shape`` (one sample, without the batch).

    Args:
        model: a ``Module``.
        input_shape: the shape of one input sample, e.g. ``(64,)`` or ``(1, 28, 28)``; a list of
            shapes for a model with several inputs.
        batch_size: the batch size for the shapes and the activation memory.
        dtype: the input dtype; the model's floating dtype by default (use an int dtype for token ids).

    Returns:
        a ``ModelSummary``; print it for the table.

    >>> print(summary(MLP(64, [32], 10), (64,)))   # doctest: +SKIP
    """
    shapes = input_shape if (isinstance(input_shape, list) and input_shape
                             and isinstance(input_shape[0], (tuple, list))) else [input_shape]
    shapes = [tuple(int(d) for d in s) for s in shapes]
    if any(d < 1 for s in shapes for d in s):
        raise ValueError(f"summary(): input_shape must hold positive sizes (one sample, without the batch), "
                         f"got {input_shape!r}")
    if dtype is None:
        dtype = next((p.array.dtype for p in model.parameters() if p.array.dtype.kind == "f"), np.dtype(np.float32))
    inputs = [Tensor(np.zeros((batch_size, *s), dtype=dtype)) for s in shapes]

    records = {}
    order = []
    handles = []
    depth_of = {}
    for name, module in model.named_modules():
        if module is model:
            continue
        depth_of[id(module)] = name.count(".") + 1

        def hook(mod, args, out, name=name):
            if name not in records:
                order.append(name)
            records[name] = _shapes(out)
        handles.append(module.register_forward_hook(hook))

    was_training = model.training
    model.eval()
    try:
        with grad_mode.no_grad():
            output = model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    rows = []
    activation = 0
    modules = dict(model.named_modules())
    for name, module in modules.items():
        if module is model:
            continue
        own = list(module.parameters(recurse=False))
        params = sum(p.array.size for p in own)
        trainable = sum(p.array.size for p in own if p.requires_grad)
        out_shapes, nbytes = records.get(name, ([], 0))
        if not any(True for _ in module.children()):
            activation += nbytes
        rows.append({"name": name, "type": type(module).__name__, "depth": depth_of[id(module)],
                     "output_shapes": out_shapes, "params": params, "trainable": trainable,
                     "called": name in records})
    unique = {id(p): p for p in model.parameters()}
    total = sum(p.array.size for p in unique.values())
    trainable = sum(p.array.size for p in unique.values() if p.requires_grad)
    param_bytes = sum(p.array.nbytes for p in unique.values())
    if not rows:
        out_shapes, nbytes = _shapes(output)
        activation = nbytes
        rows.append({"name": "(self)", "type": type(model).__name__, "depth": 1, "output_shapes": out_shapes,
                     "params": total, "trainable": trainable, "called": True})
    return ModelSummary(type(model).__name__, rows, shapes[0] if len(shapes) == 1 else shapes, batch_size, total,
                        trainable, param_bytes, activation, sum(x.array.nbytes for x in inputs), _shapes(output)[0],
                        frozen_modules=_frozen_modules(model) if trainable < total else ())
