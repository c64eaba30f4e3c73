"""``Module`` and ``Parameter``: the building blocks of every network, with PyTorch's API."""
from collections import OrderedDict

import numpy as np

from ... import backend, devices
from ...autograd.function import Function
from ...autograd.tensor import Tensor, _wrap
from ...autograd import grad_mode
from ...ops.shape import to_args
from ...utils.hooks import RemovableHandle


class Parameter(Tensor):
    """A tensor that is a module's learnable weight: ``requires_grad=True`` and registered by assignment.

    ``Parameter(data)`` shares ``data``'s array (a Tensor or ndarray) without copying.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.empty((0,), dtype=backend.default_float)
        super().__init__(data.array if isinstance(data, Tensor) else data)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class _IncompatibleKeys(tuple):
    """``(missing_keys, unexpected_keys)``, with PyTorch's attribute names."""

    def __new__(cls, missing, unexpected):
        obj = super().__new__(cls, (missing, unexpected))
        obj.missing_keys = missing
        obj.unexpected_keys = unexpected
        return obj

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return f"_IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys})"


class Module:
    """Base class of every layer and model.

    Assigning a ``Parameter``, a ``Module`` or (through ``register_buffer``) a buffer as an attribute
    registers it, so ``parameters()``, ``state_dict()``, ``train()``/``eval()`` and ``zero_grad()`` find it.
    Subclasses call ``super().__init__()`` first and define ``forward``.
    """

    training = True

    def __init__(self, *args, **kwargs):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # ----------------------------------------------------------------- registration
    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if params is None and isinstance(value, (Parameter, Module)):
            raise AttributeError(f"cannot assign {type(value).__name__} '{name}' before Module.__init__() is called")
        # Re-assigning a name keeps its place in the registration order (``seq[0] = m`` still runs first):
        # only the other stores forget the name.
        if isinstance(value, Parameter):
            self._discard(name, keep=params)
            params[name] = value
        elif params is not None and name in params:
            if value is not None and not isinstance(value, Parameter):
                raise TypeError(f"cannot assign {type(value).__name__} as parameter '{name}' (a Parameter or None is expected)")
            params[name] = value
        elif isinstance(value, Module):
            self._discard(name, keep=self._modules)
            self._modules[name] = value
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module '{name}' (a Module or None is expected)")
            self._modules[name] = value
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer '{name}' (a Tensor or None is expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _discard(self, name, keep=None):
        for store in (self.__dict__, self._parameters, self._buffers, self._modules):
            if name in store and store is not keep:
                del store[name]
        self._non_persistent.discard(name)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                return s[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter(): '{name}' must be a Parameter or None, got {type(param).__name__}")
        self._discard(name, keep=self._parameters)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Register a non-learnable tensor (e.g. running statistics); ``persistent`` puts it in the state_dict."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer(): '{name}' must be a Tensor or None, got {type(tensor).__name__}")
        self._discard(name, keep=self._buffers)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module(): '{name}' must be a Module, got {type(module).__name__}")
        self._discard(name, keep=self._modules)
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target):
        mod = self
        if target:
            for part in target.split("."):
                if part not in mod._modules:
                    raise AttributeError(f"{type(mod).__name__} has no submodule '{part}' (in '{target}')")
                mod = mod._modules[part]
        return mod

    def get_parameter(self, target):
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._parameters:
            raise AttributeError(f"{type(mod).__name__} has no parameter '{name}'")
        return mod._parameters[name]

    # ----------------------------------------------------------------- traversal
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, mod in self._modules.items():
            if mod is None:
                continue
            yield from mod.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, mod in self._modules.items():
            if mod is not None and id(mod) not in seen:
                seen.add(id(mod))
                yield name, mod

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, store, prefix, recurse, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mprefix, mod in mods:
            for name, value in getattr(mod, store).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield mprefix + ("." if mprefix else "") + name, value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ----------------------------------------------------------------- modes and utilities
    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError(f"train(): mode is expected to be a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.array[...] = 0

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def to(self, *args, dtype=None, device=None, non_blocking=False, memory_format=None):
        """Move and cast in place, as PyTorch does: ``to(device)``, ``to(dtype)``, ``to(device, dtype)``,
        ``to(tensor)``. Floating parameters and buffers take ``dtype``; parameters, buffers and their
        gradients move to the device (which must be available, see ``somanet.devices``). Returns the
        module itself."""
        dtype, device = to_args(args, dtype, device)
        if device is not None:
            self._move(devices.resolve(device, f"{type(self).__name__}.to"))
        if dtype is None:
            return self
        dtype = backend.to_dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Module.to(): only floating dtypes are allowed, got {dtype}")
        for m in self.modules():
            for store in (m._parameters, m._buffers):
                for t in store.values():
                    if t is not None and t.array.dtype.kind == "f" and t.array.dtype != dtype:
                        t.array = t.array.astype(dtype)
                        if t.grad is not None:
                            t.grad.array = t.grad.array.astype(dtype)
        return self

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def half(self):
        return self.to(np.float16)

    def _move(self, device):
        # In place, as PyTorch does: parameters stay the same objects, so optimizers built after the
        # move (or before it, while they hold no state yet) update them on the new device.
        for m in self.modules():
            for store in (m._parameters, m._buffers):
                for t in store.values():
                    if t is not None:
                        t.array = devices.move(t.array, device)
                        if t.grad is not None:
                            t.grad.array = devices.move(t.grad.array, device)

    def cpu(self):
        """Move every parameter and buffer to the CPU, in place; returns the module."""
        return self.to("cpu")

    def cuda(self, device=None):
        """Move every parameter and buffer to a CUDA device (``cuda:0`` by default), in place."""
        d = devices.resolve("cuda" if device is None else device, f"{type(self).__name__}.cuda")
        return self.to(d)

    # ----------------------------------------------------------------- state
    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """An ordered mapping of every parameter and persistent buffer, by dotted name.

        Values are tensors sharing this module's arrays (``keep_vars=True`` returns the Parameters).
        """
        if destination is None:
            destination = OrderedDict()
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                destination[prefix + name] = b if keep_vars else b.detach()
        for name, mod in self._modules.items():
            if mod is not None:
                mod.state_dict(destination, prefix + name + ".", keep_vars)
        return destination

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy arrays or tensors from ``state_dict`` into parameters and buffers, by name.

        Returns ``(missing_keys, unexpected_keys)``; with ``strict`` either raises. Shapes must match;
        values are cast to each parameter's dtype.
        """
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            arr = value.array if isinstance(value, Tensor) else np.asarray(value)
            if arr.shape != target.array.shape:
                errors.append(f"size mismatch for {key}: copying a param with shape {tuple(arr.shape)}, "
                              f"the parameter in the current model has shape {tuple(target.array.shape)}")
                continue
            if assign:
                target.array = arr.astype(target.array.dtype, copy=False)
            else:
                # Copy into the existing array so optimizers holding it see the new values (a checkpoint
                # read on the CPU goes to the parameter's device first, as in PyTorch).
                target.array[...] = devices.move(arr, devices.of_array(target.array))
            target._version[0] += 1
        if strict and (missing or unexpected):
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        return _IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------------- hooks and calling
    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False):
        """``hook(module, args, output)``; a non-None return replaces the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = (hook, with_kwargs)
        if prepend:
            self._forward_hooks.move_to_end(handle.id, last=False)
        return handle

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """``hook(module, args)``; a non-None return replaces the positional args."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = (hook, with_kwargs)
        if prepend:
            self._forward_pre_hooks.move_to_end(handle.id, last=False)
        return handle

    def register_full_backward_pre_hook(self, hook, *, prepend=False):
        """``hook(module, grad_output) -> new grad_output or None``, called when the gradients with respect to
        the module's outputs are ready, before they flow into the module."""
        store = self.__dict__.setdefault("_backward_pre_hooks", OrderedDict())
        handle = RemovableHandle(store)
        store[handle.id] = hook
        if prepend:
            store.move_to_end(handle.id, last=False)
        return handle

    def register_full_backward_hook(self, hook, *, prepend=False):
        """``hook(module, grad_input, grad_output) -> new grad_input or None``, called when the gradients with
        respect to the module's positional tensor inputs are computed (None for inputs without gradient)."""
        store = self.__dict__.setdefault("_backward_hooks", OrderedDict())
        handle = RemovableHandle(store)
        store[handle.id] = hook
        if prepend:
            store.move_to_end(handle.id, last=False)
        return handle

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"Module [{type(self).__name__}] is missing the required \"forward\" function")

    def __call__(self, *args, **kwargs):
        if (self.__dict__.get("_backward_hooks") or self.__dict__.get("_backward_pre_hooks")) and \
                grad_mode._state.enabled:
            return _call_with_backward_hooks(self, args, kwargs)
        return self._call_forward(args, kwargs)

    def _call_forward(self, args, kwargs):
        if self._forward_pre_hooks:
            for hook, with_kwargs in list(self._forward_pre_hooks.values()):
                if with_kwargs:
                    res = hook(self, args, kwargs)
                    if res is not None:
                        args, kwargs = res
                else:
                    res = hook(self, args)
                    if res is not None:
                        args = res if isinstance(res, tuple) else (res,)
        out = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook, with_kwargs in list(self._forward_hooks.values()):
                res = hook(self, args, kwargs, out) if with_kwargs else hook(self, args, out)
                if res is not None:
                    out = res
        return out

    # ----------------------------------------------------------------- printing
    def extra_repr(self):
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        children = []
        for name, mod in self._modules.items():
            text = repr(mod).replace("\n", "\n  ")
            children.append(f"({name}): {text}")
        lines = lines + children
        body = self._get_name() + "("
        if lines:
            if len(lines) == 1 and not children:
                body += lines[0]
            else:
                body += "\n  " + "\n  ".join(lines) + "\n"
        return body + ")"

    def __dir__(self):
        return list(super().__dir__()) + list(self._parameters) + list(self._buffers) + list(self._modules)

    def __getstate__(self):
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)


# --------------------------------------------------------------------------- full backward hooks
class _HookIdentity(Function):
    """Passes tensors through unchanged; its backward hands their gradients to a module's backward hooks."""

    def forward(ctx, *arrays, on_backward):
        ctx.on_backward = on_backward
        return tuple(arrays)

    def backward(ctx, *grads):
        return ctx.on_backward(grads)

    def grad_graph(ctx, *grads):
        # create_graph=True: the hooks see, and may return, tensors of the graph.
        return ctx.on_backward(grads, graph=True)


def _grads_to_tensors(grads):
    return tuple(None if g is None else g if isinstance(g, Tensor) else _wrap(g, False, None, 0) for g in grads)


def _grads_to_arrays(new, old, what, graph=False):
    if not isinstance(new, (tuple, list)):
        new = (new,)
    if len(new) != len(old):
        raise RuntimeError(f"backward hook returned {len(new)} {what} gradients, expected {len(old)}")
    out = []
    for n, o in zip(new, old):
        if n is None:
            out.append(None)
            continue
        arr = n.array if isinstance(n, Tensor) else np.asarray(n)
        if o is not None and arr.shape != tuple(o.shape):
            raise RuntimeError(f"backward hook returned a {what} gradient of shape {tuple(arr.shape)}, expected "
                               f"{tuple(o.shape)}")
        # The graph pass keeps a returned tensor as it is, so that its graph is kept too.
        out.append((n if isinstance(n, Tensor) else _wrap(arr, False, None, 0)) if graph else arr)
    return tuple(out)


def _call_with_backward_hooks(module, args, kwargs):
    """Run ``module`` so that its full backward (pre-)hooks see the gradients of its outputs and inputs.

    The positional tensor inputs go through one identity node and the tensor outputs through another: the
    outputs' node receives ``grad_output`` (pre-hooks may replace it), the inputs' node ``grad_input``
    (hooks may replace it). With no input that requires grad, the hooks run at the outputs' node with
    ``grad_input`` all None, as in PyTorch.
    """
    state = {}
    positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    hooked_inputs = [i for i in positions if args[i].requires_grad]

    def run_hooks(grad_input, graph):
        grad_output = state.get("grad_output", ())
        for hook in list(module.__dict__.get("_backward_hooks", {}).values()):
            res = hook(module, _grads_to_tensors(grad_input), _grads_to_tensors(grad_output))
            if res is not None:
                grad_input = _grads_to_arrays(res, grad_input, "input", graph)
        return grad_input

    # ``graph``: called by create_graph=True's pass, with tensors of the graph instead of arrays.
    def on_input_grads(grads, graph=False):
        if "grad_output" not in state:
            # Reached without passing the outputs' node: a later backward through a create_graph=True
            # gradient. The hooks already ran for this call, and PyTorch runs them once.
            return grads
        full = [None] * len(args)
        for i, g in zip(hooked_inputs, grads):
            full[i] = g
        full = run_hooks(tuple(full), graph)
        del state["grad_output"]
        return tuple(full[i] for i in hooked_inputs)

    def on_output_grads(grads, graph=False):
        for hook in list(module.__dict__.get("_backward_pre_hooks", {}).values()):
            res = hook(module, _grads_to_tensors(grads))
            if res is not None:
                grads = _grads_to_arrays(res, grads, "output", graph)
        state["grad_output"] = grads
        if not hooked_inputs:
            run_hooks(tuple(None for _ in args), graph)
        return grads

    if hooked_inputs:
        passed = _HookIdentity.apply(*(args[i] for i in hooked_inputs), on_backward=on_input_grads)
        args = list(args)
        for i, t in zip(hooked_inputs, passed):
            args[i] = t
        args = tuple(args)
    out = module._call_forward(args, kwargs)
    single = isinstance(out, Tensor)
    outs = (out,) if single else tuple(out) if isinstance(out, (tuple, list)) else None
    if outs is None:
        return out
    grad_outs = [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o.requires_grad]
    if not grad_outs:
        return out
    passed = _HookIdentity.apply(*(outs[i] for i in grad_outs), on_backward=on_output_grads)
    new = list(outs)
    for i, t in zip(grad_outs, passed):
        new[i] = t
    if single:
        return new[0]
    if hasattr(out, "_fields"):  # a namedtuple
        return type(out)(*new)
    return tuple(new) if isinstance(out, tuple) else new
