"""``export``: trace a somanet model and write it as an ONNX graph (see ``somanet/onnx/__init__.py``)."""
import inspect
import io
import os
import warnings

import numpy as np

from ..autograd.tensor import Tensor
from ._graph import ExportError, Lowering, Op, Trace, UnsupportedOperatorError, Value
from ._ops import handler_for

#: The opsets ``export`` writes; 17 (LayerNormalization) is the default, 20 adds a native Gelu.
MIN_OPSET = 13


def _import_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("somanet.onnx.export needs the onnx package: pip install 'somanet[onnx]' (or pip install "
                          "onnx); onnxruntime runs the exported models") from exc
    return onnx


# --------------------------------------------------------------------------- inputs
def _split_args(args, kwargs):
    if isinstance(args, (Tensor, np.ndarray)):
        args = (args,)
    elif isinstance(args, list):
        args = tuple(args)
    elif not isinstance(args, tuple):
        raise TypeError(f"export(): args must be a Tensor or a tuple of model arguments, got {type(args).__name__}")
    kwargs = dict(kwargs or {})
    if args and isinstance(args[-1], dict):
        kwargs = {**args[-1], **kwargs}
        args = args[:-1]
    as_tensor = (lambda a: Tensor(a) if isinstance(a, np.ndarray) else a)
    return tuple(as_tensor(a) for a in args), {k: as_tensor(v) for k, v in kwargs.items()}


def _input_slots(model, args, kwargs, input_names):
    """``[(name, tensor, ('arg', i) or ('kw', key))]`` for every tensor argument, in order."""
    try:
        params = [p.name for p in inspect.signature(model.forward if hasattr(model, "forward") else model)
                  .parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    slots = []
    for i, a in enumerate(args):
        if isinstance(a, Tensor):
            default = params[i] if i < len(params) else f"input_{i}"
            slots.append((default, a, ("arg", i)))
    for k, v in kwargs.items():
        if isinstance(v, Tensor):
            slots.append((k, v, ("kw", k)))
    if input_names is not None:
        input_names = list(input_names)
        if len(input_names) > len(slots):
            raise ValueError(f"export(): {len(input_names)} input_names for {len(slots)} tensor inputs")
        slots = [(input_names[j] if j < len(input_names) else name, t, where)
                 for j, (name, t, where) in enumerate(slots)]
    names = [s[0] for s in slots]
    if len(set(names)) != len(names):
        raise ValueError(f"export(): input names must be unique, got {names}")
    return slots


def _dynamic_spec(dynamic_axes):
    """``{value name: {axis: dim name}}`` from PyTorch's forms (a dict of axes to names, or a list of axes)."""
    out = {}
    for name, axes in (dynamic_axes or {}).items():
        if isinstance(axes, dict):
            spec = {int(a): str(n) for a, n in axes.items()}
        elif isinstance(axes, (list, tuple)):
            spec = {int(a): f"{name}_dim{int(a)}" for a in axes}
        else:
            raise TypeError(f"export(): dynamic_axes[{name!r}] must be a dict {{axis: name}} or a list of axes, got "
                            f"{type(axes).__name__}")
        out[name] = spec
    return out


def _resized(arr, axis, size):
    """``arr`` with dimension ``axis`` resized to ``size``, repeating its entries (token ids stay valid)."""
    idx = np.arange(size) % arr.shape[axis]
    return np.take(arr, idx, axis=axis)


def _second_sizes(slots, dyn, grow=True):
    """A new size for every dynamic dim name: different from the first, not 1, and different for names that
    share a size, so that the two traces tell every dynamic size apart."""
    sizes = {}
    for name, t, _ in slots:
        for axis, dim in dyn.get(name, {}).items():
            if axis < -t.ndim or axis >= t.ndim:
                raise ValueError(f"export(): dynamic axis {axis} of input {name!r} is out of range for shape "
                                 f"{tuple(t.shape)}")
            n = t.shape[axis]
            if sizes.setdefault(dim, n) != n:
                raise ValueError(f"export(): the dynamic dimension {dim!r} has size {sizes[dim]} in one input and {n} "
                                 f"in {name!r}")
    out = {}
    for k, (dim, n) in enumerate(sizes.items()):
        out[dim] = n + 1 + k if grow or n - 1 - k < 2 else n - 1 - k
    return out


# --------------------------------------------------------------------------- outputs
def _flatten(out, hint, acc):
    if isinstance(out, Tensor):
        acc.append((hint, out))
    elif out is None:
        pass
    elif isinstance(out, tuple) and hasattr(out, "_fields"):
        for field, v in zip(out._fields, out):
            _flatten(v, field, acc)
    elif isinstance(out, (tuple, list)):
        for i, v in enumerate(out):
            _flatten(v, f"{hint}_{i}", acc)
    elif isinstance(out, dict):
        for k, v in out.items():
            _flatten(v, str(k), acc)
    elif isinstance(out, (int, float, bool, str)):
        pass  # plain values are not graph outputs
    else:
        raise ExportError(f"export(): the model returned a {type(out).__name__}, which is not a Tensor or a "
                          f"container of Tensors")
    return acc


def _output_list(out):
    flat = _flatten(out, "output", [])
    if isinstance(out, Tensor):
        return [("output", flat[0][1])]
    return flat


# --------------------------------------------------------------------------- export
def export(model, args, f=None, input_names=None, output_names=None, dynamic_axes=None, opset_version=17, *,
           kwargs=None, export_params=True, do_constant_folding=True, keep_initializers_as_inputs=False,
           verbose=False, check=True):
    """Trace ``model`` on ``args`` and write it to ``f`` as an ONNX model; returns the ``onnx.ModelProto``.

    See the package docstring (``help(somanet.onnx)``) for the details.
    """
    onnx = _import_onnx()
    latest = onnx.defs.onnx_opset_version()
    if not isinstance(opset_version, int) or not MIN_OPSET <= opset_version <= latest:
        raise ValueError(f"export(): opset_version must be an int from {MIN_OPSET} to {latest} (this onnx package's "
                         f"newest), got {opset_version!r}")
    if not export_params:
        raise ValueError("export(): export_params=False is not supported; the parameters are written as "
                         "initializers (keep_initializers_as_inputs=True also lists them as graph inputs)")
    args, kwargs = _split_args(args, kwargs)
    slots = _input_slots(model, args, kwargs, input_names)
    dyn = _dynamic_spec(dynamic_axes)
    for name, spec in dyn.items():
        slot = next((s for s in slots if s[0] == name), None)
        if slot is not None:
            dyn[name] = {a % slot[1].ndim if slot[1].ndim else a: d for a, d in spec.items()}

    is_module = hasattr(model, "named_parameters") and hasattr(model, "train")
    was_training = getattr(model, "training", False) if is_module else False
    params, modules = {}, {}
    if is_module:
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if t is None:
                continue
            params.setdefault(id(t), name)
            params.setdefault(id(t.array), name)
        for name, m in model.named_modules():
            modules[id(m)] = name
        model.eval()
    try:
        def call(a, kw):
            return model(*a, **kw)

        trace = Trace(modules)
        out = trace.run(lambda: call(args, kwargs))
        outputs = _output_list(out)
        trace2 = None
        input_dyn = {s[0]: dyn.get(s[0], {}) for s in slots}
        sizes = outputs2 = None
        if any(input_dyn.values()):
            sizes, trace2, outputs2 = _second_trace(call, args, kwargs, slots, input_dyn, modules, trace, outputs)
        else:
            trace2, outputs2 = _value_trace(call, args, kwargs, slots, modules, trace, outputs)
        model_proto = _build(onnx, opset_version, trace, trace2, slots, outputs, outputs2, params, modules, dyn,
                             output_names, keep_initializers_as_inputs, sizes)
    finally:
        if is_module:
            model.train(was_training)
    if check:
        onnx.checker.check_model(model_proto)
    if verbose:
        print(onnx.helper.printable_graph(model_proto.graph))
    if f is not None:
        if isinstance(f, (str, os.PathLike)):
            onnx.save(model_proto, os.fspath(f))
        elif isinstance(f, io.IOBase) or hasattr(f, "write"):
            f.write(model_proto.SerializeToString())
        else:
            raise TypeError(f"export(): f must be a path or a binary file object, got {type(f).__name__}")
    return model_proto


def _second_trace(call, args, kwargs, slots, input_dyn, modules, trace, outputs):
    """Run the model again with the dynamic dimensions grown (or, if that fails, shrunk) and check that it
    runs the same ops; returns ``(sizes, trace, outputs)``."""
    error = None
    for grow in (True, False):
        sizes = _second_sizes(slots, input_dyn, grow)
        args2, kwargs2 = list(args), dict(kwargs)
        for name, t, (kind, key) in slots:
            arr = t.array.copy()
            for axis, dim in input_dyn[name].items():
                arr = _resized(arr, axis, sizes[dim])
            if kind == "arg":
                args2[key] = Tensor(arr)
            else:
                kwargs2[key] = Tensor(arr)
        trace2 = Trace(modules)
        try:
            out2 = trace2.run(lambda: call(tuple(args2), kwargs2))
        except Exception as exc:  # the model refuses these sizes (a maximum length): try the other way
            error = ExportError(f"export(): with dynamic_axes the model runs a second time with the dynamic "
                                f"dimensions resized ({sizes}), and that run failed: {type(exc).__name__}: {exc}")
            continue
        outputs2 = _output_list(out2)
        try:
            _compare_traces(trace, trace2, outputs, outputs2)
        except ExportError as exc:
            error = exc
            continue
        return sizes, trace2, outputs2
    raise error


def _perturbed(arr):
    """Other values of the same shape and kind: reversed along the last axis (token ids stay valid ids), and
    shifted for floats that read the same reversed."""
    if arr.ndim == 0 or arr.size < 2:
        return arr + 1 if arr.dtype.kind in "iuf" else arr
    out = arr[..., ::-1].copy()
    if arr.dtype.kind == "f" and np.array_equal(out, arr):
        out = out + arr.dtype.type(0.5)
    return out


def _value_trace(call, args, kwargs, slots, modules, trace, outputs):
    """Run the model again on other input values of the same shapes: a constant (or a plain argument) that
    changes with them was computed from an input outside somanet's ops, and the graph would freeze it. The
    handlers compare the two traces. Returns ``(trace, outputs)``, or ``(None, None)`` when the model refuses
    the other values."""
    args2, kwargs2 = list(args), dict(kwargs)
    for _, t, (kind, key) in slots:
        t2 = Tensor(_perturbed(t.array))
        if kind == "arg":
            args2[key] = t2
        else:
            kwargs2[key] = t2
    trace2 = Trace(modules)
    try:
        out2 = trace2.run(lambda: call(tuple(args2), kwargs2))
    except Exception:  # the model rejects these values (a validity check): skip the comparison
        return None, None
    outputs2 = _output_list(out2)
    _compare_traces(trace, trace2, outputs, outputs2, "values")
    return trace2, outputs2


def _compare_traces(t1, t2, outputs, outputs2, what="sizes"):
    r1, r2 = t1.records, t2.records
    hint = ("export with fixed sizes" if what == "sizes" else
            "for example a mask that is all ones takes a shortcut; export with inputs that take the general path")
    for i, (a, b) in enumerate(zip(r1, r2)):
        if a.cls is not b.cls:
            where = f" in {a.module}" if a.module else ""
            raise ExportError(f"export(): the model ran different ops for other input {what} (op #{i}: {a.name} "
                              f"against {b.name}{where}): its control flow depends on the input {what}, which one "
                              f"graph cannot follow; {hint}")
    if len(r1) != len(r2) or len(outputs) != len(outputs2):
        raise ExportError(f"export(): the model ran a different number of ops (or returned a different number of "
                          f"outputs) for other input {what}: its control flow depends on them; {hint}")


def _build(onnx, opset, trace, trace2, slots, outputs, outputs2, params, modules, dyn, output_names,
           keep_initializers_as_inputs, sizes):
    helper = onnx.helper
    g = Lowering(onnx, opset, params, modules)
    # Graph inputs.
    graph_inputs = []
    dim_names = {}  # (size in trace 1, size in trace 2) -> symbolic name
    input_names = {s[0] for s in slots}
    g.used_names.update(input_names)
    # Output names first, so that no value of the graph takes one of them.
    names = list(output_names) if output_names is not None else []
    if len(names) > len(outputs):
        raise ValueError(f"export(): {len(names)} output_names for {len(outputs)} outputs")
    final_names = []
    for j, (hint, _) in enumerate(outputs):
        name = names[j] if j < len(names) else hint
        if name in final_names or name in input_names:
            name = f"{name}_{j}"
        final_names.append(name)
    g.used_names.update(final_names)
    sizes = sizes or {}
    for name, t, _ in slots:
        spec = dyn.get(name, {})
        shape2 = tuple(sizes[spec[a]] if a in spec else n for a, n in enumerate(t.shape))
        v = Value(name, t.array.dtype, t.shape, shape2, version=(t._version, t._version[0]))
        g.env[id(t)] = v
        g.env[id(t.array)] = v
        for axis, dim in spec.items():
            g.dim_sources.append((v, axis))
            dim_names[(t.shape[axis], shape2[axis])] = dim
        dims = [spec.get(a, n) for a, n in enumerate(t.shape)]
        graph_inputs.append(helper.make_tensor_value_info(name, g.onnx_dtype(t.array.dtype), dims))
    g.cache["_inputs"] = [s[1] for s in slots]  # keep the ids valid

    # The ops.
    records2 = trace2.records if trace2 is not None else [None] * len(trace.records)
    for index, (rec, rec2) in enumerate(zip(trace.records, records2)):
        op = Op(g, rec, rec2, index)
        handler = handler_for(rec.cls)
        if handler is None:
            raise UnsupportedOperatorError(
                f"cannot export op {rec.name} (#{index}){op.where()}: somanet.onnx has no ONNX translation for it "
                f"(see somanet.onnx.supported_ops()); rewrite that part of the model with supported ops, or "
                f"register one with somanet.onnx.register_op({rec.name!r})", rec.name)
        names = handler(op)
        if not isinstance(names, (tuple, list)):
            names = (names,)
        if len(names) != len(rec.outputs):
            raise ExportError(f"internal error: the {rec.name} translation gave {len(names)} outputs for "
                              f"{len(rec.outputs)}")
        op.check_arguments()
        for k, (o, name) in enumerate(zip(rec.outputs, names)):
            if name is None or not isinstance(o, Tensor):
                continue
            arr = rec.arrays[k]  # the output's array when the op ran (an in-place op may have swapped it since)
            shape2 = rec2.arrays[k].shape if rec2 is not None else arr.shape
            v = Value(name, arr.dtype, arr.shape, shape2, version=(o._version, rec.out_versions[k]))
            g.env[id(arr)] = v
            if o.array is arr:
                g.env[id(o)] = v

    # Graph outputs.
    rename = {}
    graph_outputs = []
    produced = {o for node in g.nodes for o in node.output}
    for j, ((hint, t), name) in enumerate(zip(outputs, final_names)):
        v = g.env.get(id(t.array)) or g.env.get(id(t))
        if v is not None and v.version is not None and v.version[0] is t._version and v.version[1] != t._version[0]:
            raise ExportError(f"export(): output {name!r} was changed in place after it was computed; the graph "
                              f"cannot express in-place updates")
        if v is None:  # a parameter or a constant returned as it is
            pname = params.get(id(t)) or params.get(id(t.array))
            v = g.param_value(pname, t.array) if pname else g.constant(t.array, "const")
        if v.name in produced and v.name not in rename:
            rename[v.name] = name
        else:
            g.nodes.append(helper.make_node("Identity", [rename.get(v.name, v.name)], [name],
                                            name=g.unique(f"/output/{name}")))
        shape2 = outputs2[j][1].array.shape if outputs2 is not None else t.array.shape
        spec = dyn.get(name, {})
        dims = []
        for axis, (a, b) in enumerate(zip(t.array.shape, shape2)):
            if a == b:
                dims.append(int(a))
                if axis in spec or axis - t.ndim in spec:
                    warnings.warn(f"export(): axis {axis} of output {name!r} is declared dynamic but does not follow "
                                  f"the dynamic inputs; it is written with its fixed size {a}", stacklevel=3)
            else:
                dims.append(spec.get(axis) or spec.get(axis - t.ndim) or dim_names.get((a, b)) or f"{name}_dim{axis}")
        graph_outputs.append(helper.make_tensor_value_info(name, g.onnx_dtype(t.array.dtype), dims))
    unknown = sorted(set(dyn) - input_names - set(final_names))
    if unknown:
        raise ValueError(f"export(): dynamic_axes names {unknown} are neither inputs ({sorted(input_names)}) nor "
                         f"outputs ({final_names})")
    if rename:
        for node in g.nodes:
            for lst in (node.input, node.output):
                for i, n in enumerate(lst):
                    if n in rename:
                        lst[i] = rename[n]
    # Nodes whose results no output needs (ops the model ran on the side) are left out.
    needed = set(final_names)
    kept = []
    for node in reversed(g.nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    g.nodes = kept[::-1]

    used = {i for node in g.nodes for i in node.input}
    for name, t, _ in slots:
        if name not in used:
            warnings.warn(f"export(): input {name!r} is not used by any traced op; if the model reads its values "
                          f"directly (through .array, .numpy() or NumPy), the exported graph has them baked in as "
                          f"they were during the trace", stacklevel=3)
    inits = [i for i in g.initializers if i.name in used]
    if keep_initializers_as_inputs:
        graph_inputs += [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in inits]
    graph = helper.make_graph(g.nodes, "somanet", graph_inputs, graph_outputs, initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    from .. import __version__
    model = helper.make_model(graph, opset_imports=opsets, producer_name="somanet", producer_version=__version__)
    model.ir_version = max(helper.find_min_ir_version_for(opsets), 8)
    return model
