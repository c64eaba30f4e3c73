"""``Optimizer``: the base of every somanet optimizer.

It keeps PyTorch's contract: ``param_groups`` (a list of dicts, each with its ``params`` and its own
hyperparameters), ``defaults``, ``state`` (per-parameter dicts of arrays), ``add_param_group``,
``zero_grad(set_to_none=True)``, ``step(closure=None)`` and a ``state_dict`` with PyTorch's layout
that round-trips mid-training.

A subclass only writes three things: its constructor (validation and ``defaults``), ``_init_state``
(the lazily created per-parameter state) and ``_update`` (the update rule on raw arrays). The update
runs on arrays in place, so it records no graph. ``step`` runs it either once per parameter or, when a
group holds many small parameters, once on the whole group flattened into one array ("multi-tensor");
the update rule is elementwise, so both give bit-identical results. For the same reason an update of a
large array (``_PARALLEL_MIN_ELEMENTS`` or more) runs as row blocks on ``somanet.get_num_threads()``
threads, with bit-identical results too.
"""
from collections import defaultdict
from copy import deepcopy
import math
import numbers
import warnings

import numpy as np

from ..autograd.tensor import Tensor
from ..autograd.grad_mode import enable_grad
from ..backend import array_module
from ..kernels import threads
from ..utils.hooks import RemovableHandle

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    """Marks a hyperparameter that has no default and must be given per group."""

    def __repr__(self):
        return "<required parameter>"


#: Placeholder default for a hyperparameter every param group must set (PyTorch's ``required``).
required = _RequiredParameter()

# With ``foreach=None``, the parameters of a group that have at most ``flat_max_size`` elements are
# updated together as one flattened array when there are at least _FLAT_MIN_PARAMS of them. For small
# arrays NumPy's fixed cost per call dominates, so one call per op for all of them wins; for large ones
# the gather/scatter copies cost more than they save, so they keep their own update.
_FLAT_MIN_PARAMS = 4

# An update of at least this many elements is split into row blocks over the worker threads (one
# hand-over for all the update's passes); below it, waking a worker costs what the split saves.
_PARALLEL_MIN_ELEMENTS = 1 << 20


def check_hyper(owner, ok, message, expected):
    """Raise ``ValueError("<owner>: <message> (expected <expected>)")`` unless ``ok``.

    ``message`` keeps PyTorch's wording (``"Invalid learning rate: -1.0"``) so that code matching on it
    keeps working; the prefix names the optimizer and the suffix says what was expected.
    """
    if not ok:
        raise ValueError(f"{owner}: {message} (expected {expected})")


def as_scalar(owner, name, value):
    """A hyperparameter as a Python float (a one-element Tensor or array is accepted, like PyTorch)."""
    if isinstance(value, Tensor):
        if value.array.size != 1:
            raise ValueError(f"{owner}: Tensor {name} must be 1-element, got shape {tuple(value.array.shape)}")
        return float(value.array.reshape(()))
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.reshape(()))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value) if isinstance(value, np.generic) else value


def reject_unsupported(owner, capturable=False, differentiable=False, foreach=None, fused=None):
    """Refuse the PyTorch flags that have no meaning for in-place NumPy updates."""
    if capturable:
        raise ValueError(f"{owner}: capturable=True is for CUDA graph capture, which somanet does not support "
                         "(expected capturable=False)")
    if differentiable:
        raise ValueError(f"{owner}: differentiable=True is not supported: somanet optimizers update arrays in "
                         "place and record no graph (expected differentiable=False)")
    if fused and foreach:
        raise RuntimeError(f"{owner}: `fused` and `foreach` cannot be `True` together.")


class Optimizer:
    """Base class of all optimizers.

    Args:
        params: an iterable of Tensors, of ``(name, Tensor)`` pairs, or of dicts that each define a
            param group (``{"params": [...], "lr": 0.1, ...}``).
        defaults: the default hyperparameters, used where a group does not set its own.

    Subclasses implement ``_init_state(group, param, state)`` and
    ``_update(group, param, grad, state, step, tmp)`` on raw arrays.
    """

    #: Largest parameter (in elements) that ``foreach=None`` puts in the flattened update; the update
    #: rule's number of passes over memory sets where the gather/scatter copies stop paying.
    flat_max_size = 16384

    #: State entries that are host scalars read as Python floats (the step count, ASGD's ``eta``): they
    #: stay on the CPU whatever the parameter's device, as PyTorch keeps ``step``; every other state
    #: array lives on its parameter's device.
    _host_state = ("step",)

    def _needs_state(self, group):
        # Whether every parameter with a gradient gets a state dict (SGD without momentum keeps none).
        return True

    def __init__(self, params, defaults):
        self.defaults = defaults
        self._step_pre_hooks = {}
        self._step_post_hooks = {}
        self._scratch = {}
        self._flat = {}
        self._opt_called = False
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params argument given to the optimizer should be an iterable of Tensors "
                            f"or dicts, but got a single {type(params).__name__}")
        if isinstance(params, dict):
            raise TypeError(f"{name}: params must be an iterable of Tensors or of param-group dicts, got a dict; "
                            "wrap it in a list: [{'params': ...}]")
        self.state = defaultdict(dict)
        self.param_groups = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError(f"{name}: optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group):
        """Add a param group (a dict with ``params`` and optional per-group hyperparameters).

        Hyperparameters the group does not set are taken from ``defaults``. Useful to unfreeze layers
        while training.
        """
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}.add_param_group(): param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}.add_param_group(): param_group has no 'params' entry (got keys {sorted(param_group)})")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(f"{name}: optimizer parameters need to be organized in ordered collections, but the "
                            "ordering of tensors in sets will change between runs. Please use a list instead.")
        else:
            params = list(params)

        tensors, names = [], []
        for item in params:
            if isinstance(item, tuple):
                names.append(item[0])
                tensors.append(item[1])
            else:
                tensors.append(item)
        param_group["params"] = tensors
        if names:
            if len(names) != len(tensors):
                raise ValueError(f"{name}: all optimizer params should be with/without names. Some param names are missing")
            param_group["param_names"] = names

        for p in tensors:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if p.grad_fn is not None and not p.retains_grad:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (got one made by {p.grad_fn!r})")

        for key, default in self.defaults.items():
            if default is required and key not in param_group:
                raise ValueError(f"{name}: parameter group didn't specify a value of required optimization "
                                 f"parameter {key}")
            param_group.setdefault(key, default)

        ids = [id(p) for p in tensors]
        if len(ids) != len(set(ids)):
            warnings.warn(f"{name}: optimizer contains a parameter group with duplicate parameters; in future, "
                          "this will cause an error", stacklevel=3)

        seen = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                kind = "with names" if "param_names" in param_group else "without names"
                raise ValueError(f"{name}: all optimizer param groups should be with/without names. "
                                 f"cannot add param group {kind} to the optimizer")
        if not seen.isdisjoint(ids):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)
        self._flat.clear()

    # ------------------------------------------------------------------ gradients
    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all optimized tensors: to ``None`` (default) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        if p.grad.grad_fn is not None:
                            p.grad.detach_()
                        p.grad.requires_grad = False
                        p.grad.array[...] = 0

    # ------------------------------------------------------------------ hooks
    def register_step_pre_hook(self, hook):
        """Call ``hook(optimizer, args, kwargs)`` before each ``step``; it may return new ``(args, kwargs)``.

        Returns a handle with ``remove()``.
        """
        handle = RemovableHandle(self._step_pre_hooks)
        self._step_pre_hooks[handle.id] = hook
        return handle

    def register_step_post_hook(self, hook):
        """Call ``hook(optimizer, args, kwargs)`` after each ``step``; returns a handle with ``remove()``."""
        handle = RemovableHandle(self._step_post_hooks)
        self._step_post_hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------------ step
    def step(self, closure=None):
        """Perform one optimization step; returns the closure's loss (or ``None``).

        ``closure`` (optional) re-evaluates the model and returns the loss; it runs with gradient
        recording on, before the update.
        """
        args, kwargs = ((closure,) if closure is not None else ()), {}
        for hook in list(self._step_pre_hooks.values()):
            result = hook(self, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(f"{type(self).__name__}: a step pre-hook must return None or a tuple of "
                                       f"new (args, kwargs), but got {result!r}")
                args, kwargs = result
        closure = args[0] if args else kwargs.get("closure")
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._opt_called = True
        for group in self.param_groups:
            self._step_group(group)
        for hook in list(self._step_post_hooks.values()):
            hook(self, args, kwargs)
        return loss

    def _step_group(self, group):
        params, grads = [], []
        name = type(self).__name__
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            garr = g.array
            parr = p.array
            if garr.shape != parr.shape:
                raise RuntimeError(f"{name}.step(): a parameter of shape {tuple(parr.shape)} has a gradient of shape "
                                   f"{tuple(garr.shape)}; expected the same shape")
            if garr.dtype != parr.dtype:
                raise TypeError(f"{name}.step(): a {parr.dtype} parameter has a {garr.dtype} gradient; expected the "
                                "gradient to have the parameter's dtype")
            params.append(p)
            grads.append(garr)
        if not params:
            return
        flat = self._flat_members(group, params)
        if flat:
            if len(flat) == len(params):
                if self._flat_step(group, params, grads):
                    return
            else:
                if self._flat_step(group, [params[i] for i in flat], [grads[i] for i in flat]):
                    keep = set(flat)
                    rest = [i for i in range(len(params)) if i not in keep]
                    params = [params[i] for i in rest]
                    grads = [grads[i] for i in rest]
        needs_state = self._needs_state(group)
        for p, g in zip(params, grads):
            state = None
            step = 0.0
            if needs_state:
                state = self.state[p]
                if not state:
                    self._init_state(group, p, state)
                else:
                    self._check_state_device(p, state)
                counter = state.get("step")
                if counter is not None:
                    counter += 1
                    step = float(counter)
            parr = p.array
            self._run_update(group, parr, g, state, step, self._temps(parr))
            _bump_version(p)

    def _check_state_device(self, param, state):
        """Raise a clear error when ``param``'s state arrays are on another device than ``param`` (the
        module was moved after the optimizer made its state, as PyTorch refuses too)."""
        kind = type(param.array)
        for key, value in state.items():
            if key in self._host_state or not hasattr(value, "shape") or type(value) is kind:
                continue
            from .. import devices

            here, there = devices.of_array(param.array), devices.of_array(value)
            if here == there:
                continue
            raise RuntimeError(f"{type(self).__name__}.step(): a parameter of shape {tuple(param.shape)} is on "
                               f"{here} but its optimizer state {key!r} is on {there}; after moving the module, "
                               f"reload the state onto the parameters' device with "
                               f"optimizer.load_state_dict(optimizer.state_dict()), or make the optimizer after "
                               f"moving the module")

    def _run_update(self, group, param, grad, state, step, tmp):
        """``_update``, split into row blocks over the worker threads when ``param`` is large enough and
        its state is complete (see ``_PARALLEL_MIN_ELEMENTS``); each block updates its rows of ``param``,
        of the state arrays shaped like it and of ``tmp``."""
        blocks = 1
        if param.size >= _PARALLEL_MIN_ELEMENTS and param.ndim and array_module(param) is np:
            # The size test is this update's work threshold; parallel_blocks adds the thread count and
            # whether a block is already running.
            blocks = threads.parallel_blocks(param.shape[0], threads.PARALLEL_MIN_WORK)
        if blocks < 2 or (state is not None and not self._state_complete(group, state)):
            self._update(group, param, grad, state, step, tmp)
            return
        shape = param.shape

        def rows(lo, hi):
            part = None
            if state is not None:
                part = {k: v[lo:hi] if getattr(v, "shape", None) == shape else v for k, v in state.items()}
            self._update(group, param[lo:hi], grad[lo:hi], part, step, [t[lo:hi] for t in tmp])

        threads.split_batch(rows, shape[0], blocks)

    def _state_complete(self, group, state):
        """Whether ``_update`` will add nothing to ``state`` (so it can run on row blocks of it)."""
        return True

    def _init_state(self, group, param, state):
        """Fill ``state`` (empty) for ``param`` before its first update."""

    def _update(self, group, param, grad, state, step, tmp):  # pragma: no cover - abstract
        """Update ``param`` (an array, in place) from ``grad`` and ``state``; ``tmp`` holds two scratch
        arrays of ``param``'s shape; ``step`` is the already incremented step count."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _update")

    # ------------------------------------------------------------------ pieces shared by update rules
    # Each rounds its coefficients to the parameter's dtype first, as the matching PyTorch CPU kernel does.
    @staticmethod
    def _effective_grad(group, param, grad, out, scratch):
        """The gradient the rule sees after the group's ``maximize`` and ``weight_decay``.

        ``-grad`` when maximizing. With ``decoupled_weight_decay`` set, the weights shrink in place
        (``param *= 1 - lr * weight_decay``) and the gradient is left alone; otherwise
        ``weight_decay * param`` is added to it (L2). Returns ``grad`` itself when neither changes the
        gradient, else ``out`` (``scratch`` is overwritten).
        """
        xp = array_module(param)
        weight_decay = float(group["weight_decay"])
        g = grad
        if group["maximize"]:
            xp.negative(grad, out=out)
            g = out
        if weight_decay != 0:
            if group.get("decoupled_weight_decay", False):
                param *= 1.0 - float(group["lr"]) * weight_decay
            else:
                xp.multiply(param, weight_decay, out=scratch)
                xp.add(g, scratch, out=out)
                g = out
        return g

    @staticmethod
    def _lerp_(avg, target, weight, scratch):
        """``avg = lerp(avg, target, weight)`` in place, with the two formulas PyTorch's lerp switches
        between at ``|weight| = 0.5`` (the weight is taken in ``avg``'s dtype)."""
        xp = array_module(avg)
        w = avg.dtype.type(weight)
        xp.subtract(target, avg, out=scratch)
        if is_small_weight(float(w)):
            scratch *= w
            avg += scratch
        else:
            scratch *= avg.dtype.type(1) - w
            xp.subtract(target, scratch, out=avg)

    @staticmethod
    def _decay_average_(avg, value, decay, scratch):
        """``avg = decay * avg + (1 - decay) * value * value`` in place (PyTorch's ``mul_``, ``addcmul_``)."""
        avg *= decay
        array_module(avg).multiply(value, 1.0 - decay, out=scratch)
        scratch *= value
        avg += scratch

    def _temps(self, like, count=2):
        """``count`` scratch arrays shaped like ``like``, carved from buffers reused across steps."""
        n = like.size
        key = (type(like), like.dtype)  # one set of buffers per device type and dtype
        bufs = self._scratch.get(key)
        if bufs is None or bufs[0].size < n:
            xp = array_module(like)
            bufs = [xp.empty(n, dtype=like.dtype) for _ in range(count)]
            self._scratch[key] = bufs
        shape = like.shape
        return [b[:n].reshape(shape) for b in bufs[:count]]

    # ------------------------------------------------------------------ multi-tensor path
    def _flat_members(self, group, params):
        """Indices of the parameters to update as one flattened array (empty: none)."""
        mode = group.get("foreach")
        if mode is None:
            mode = group.get("fused")
        if mode is None:
            limit = self.flat_max_size
            small = [i for i, p in enumerate(params) if p.array.size <= limit]
            return small if len(small) >= _FLAT_MIN_PARAMS else ()
        return range(len(params)) if mode else ()

    def _flat_step(self, group, params, grads):
        """Run the group's update once on flattened arrays; False where the group can't be flattened
        (mixed dtypes, differing step counts, differing state), so the caller updates one by one."""
        if not self._needs_state(group):
            states = None
        else:
            states = [self.state[p] for p in params]
            for p, s in zip(params, states):
                if not s:
                    self._init_state(group, p, s)
                else:
                    self._check_state_device(p, s)
        dtype = params[0].array.dtype
        kind = type(params[0].array)
        for p in params:
            if p.array.dtype != dtype or type(p.array) is not kind:
                return False
        step = 0.0
        if states is not None:
            keys = frozenset(states[0])
            for s in states:
                if s.keys() != keys:
                    return False
            if "step" in keys:
                step = float(states[0]["step"]) + 1.0
                for s in states:
                    if float(s["step"]) + 1.0 != step:
                        return False
        cache = self._flat.get(id(group))
        if cache is None or not cache.matches(params, states):
            cache = _FlatGroup(params, states)
            self._flat[id(group)] = cache
        if states is not None and "step" in keys:
            for s in states:
                s["step"] += 1
        xp = array_module(cache.param)
        xp.concatenate([p.array.reshape(-1) for p in params], out=cache.param)
        xp.concatenate([g.reshape(-1) for g in grads], out=cache.grad)
        self._run_update(group, cache.param, cache.grad, cache.state, step, self._temps(cache.param))
        if states is not None:
            cache.share_new_state(states)
        for p, view in zip(params, cache.param_views):
            xp.copyto(p.array, view)
            _bump_version(p)
        return True

    # ------------------------------------------------------------------ state dict
    def state_dict(self):
        """The optimizer's state as ``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}``.

        Parameters are replaced by their index in group order; arrays are copies, so later steps do not
        change a saved dict.
        """
        mapping = {}
        start = 0
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                mapping.setdefault(id(p), i)
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            start += len(packed["params"])
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            key = mapping[id(p)] if isinstance(p, Tensor) else p
            state[key] = {k: _copy_value(v) for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a dict made by ``state_dict``: arrays are copied onto each parameter's device, floating ones
        cast to its dtype (as PyTorch does; ``step`` stays a float32 scalar on the CPU). Loading the
        optimizer's own ``state_dict()`` after ``Module.to(device)`` moves its state along.

        The optimizer must have the same number of groups, each with the same number of parameters.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{name}.load_state_dict(): expected a dict with 'state' and 'param_groups', got "
                             f"{type(state_dict).__name__}"
                             + (f" with keys {sorted(map(str, state_dict))}" if isinstance(state_dict, dict) else ""))
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError(f"{name}.load_state_dict(): loaded state dict has a different number of parameter "
                             f"groups ({len(saved_groups)}; the optimizer has {len(groups)})")
        for i, (g, sg) in enumerate(zip(groups, saved_groups)):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError(f"{name}.load_state_dict(): loaded state dict contains a parameter group that "
                                 f"doesn't match the size of optimizer's group (group {i}: {len(sg['params'])} saved, "
                                 f"{len(g['params'])} in the optimizer)")
        id_map = {}
        for g, sg in zip(groups, saved_groups):
            for saved_id, p in zip(sg["params"], g["params"]):
                id_map[saved_id] = p
        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                p = id_map[k]
                state[p] = {key: _cast_value(p, key, value, key in self._host_state) for key, value in v.items()}
            else:
                state[k] = v
        new_groups = []
        for g, sg in zip(groups, saved_groups):
            sg["params"] = g["params"]
            if "param_names" in g and "param_names" not in sg:
                sg["param_names"] = g["param_names"]
            # Groups saved by an older version may lack newer keys: fill them from the defaults.
            for key, default in self.defaults.items():
                if default is not required:
                    sg.setdefault(key, default)
            new_groups.append(sg)
        self.state = state
        self.param_groups = new_groups
        self._flat.clear()

    # ------------------------------------------------------------------ misc
    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._step_pre_hooks = {}
        self._step_post_hooks = {}
        self._scratch = {}
        self._flat = {}
        self._opt_called = False

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


class _FlatGroup:
    """A group's parameters, gradients and state as flat arrays, with per-parameter views into them.

    After it is built, each parameter's state arrays are reshaped views of the flat state, so the
    per-parameter and flat paths read and write the same memory.
    """

    def __init__(self, params, states):
        self.ids = [id(p) for p in params]
        self.shapes = [p.array.shape for p in params]
        sizes = [p.array.size for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        total = self.offsets[-1]
        dtype = params[0].array.dtype
        xp = array_module(params[0].array)
        self.param = xp.empty(total, dtype=dtype)
        self.grad = xp.empty(total, dtype=dtype)
        self.param_views = self._views(self.param)
        self.state = {}
        self.state_views = {}
        if states is not None:
            for key in states[0]:
                if key == "step":
                    continue
                flat = xp.concatenate([xp.asarray(s[key]).reshape(-1) for s in states]).astype(dtype, copy=False)
                self._adopt(key, flat, states)

    def _views(self, flat):
        o = self.offsets
        return [flat[o[i]:o[i + 1]].reshape(shape) for i, shape in enumerate(self.shapes)]

    def _adopt(self, key, flat, states):
        views = self._views(flat)
        self.state[key] = flat
        self.state_views[key] = views
        for s, v in zip(states, views):
            s[key] = v

    def matches(self, params, states):
        if len(params) != len(self.ids):
            return False
        for p, i, shape in zip(params, self.ids, self.shapes):
            if id(p) != i or p.array.shape != shape or type(p.array) is not type(self.param):
                return False
        if states is not None:
            for key, views in self.state_views.items():
                for s, v in zip(states, views):
                    if s.get(key) is not v:
                        return False
        return True

    def share_new_state(self, states):
        """Give each parameter views of state the update created on the flat arrays (e.g. SGD's
        momentum buffer on its first step)."""
        for key, flat in self.state.items():
            if key not in self.state_views:
                self._adopt(key, flat, states)


def _bump_version(p):
    # A graph that saved this parameter must refuse to backpropagate through the changed values.
    version = getattr(p, "_version", None)
    if version is not None:
        version[0] += 1


def _copy_value(v):
    if isinstance(v, Tensor):
        return v.array.copy()
    if isinstance(v, np.ndarray):
        return v.copy()
    if hasattr(v, "__array_namespace__") or hasattr(v, "__cuda_array_interface__"):
        return v.copy()
    return deepcopy(v)


def _cast_value(param, key, value, host=False):
    """A loaded state value as an owned array on ``param``'s device (on the CPU when ``host``): floating
    state takes the parameter's dtype; ``step`` stays a float32 scalar array as in PyTorch."""
    from .. import devices

    if isinstance(value, Tensor):
        value = value.array
    elif hasattr(value, "detach") and hasattr(value, "numpy"):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray) and type(value) in devices._array_types:
        value = devices.move(value, devices.CPU)  # a device array: cast on the host, then placed below
    if isinstance(value, np.ndarray):
        if key == "step":
            return np.array(value, dtype=np.float32).reshape(())
        if value.dtype.kind == "f" and param.array.dtype.kind == "f":
            value = np.array(value, dtype=param.array.dtype)
        else:
            value = value.copy()
        return value if host else devices.move(value, devices.of_array(param.array))
    if key == "step" and isinstance(value, numbers.Real):
        return np.array(value, dtype=np.float32)
    return deepcopy(value)


def new_step():
    """A fresh step counter: a float32 scalar array, like PyTorch's ``state['step']`` tensor."""
    return np.zeros((), dtype=np.float32)


def is_small_weight(w):
    """PyTorch's lerp switches formula at |weight| = 0.5 (for accuracy near each end)."""
    return math.fabs(w) < 0.5
