"""Reverse-mode backward pass.

Nodes are visited in descending generation order with a heap: a node's generation is one more than
the highest of the nodes that produced its inputs, so when a node is popped every consumer of its
outputs has already run and its gradient is complete. No recursion, so a 100,000-op chain works.
Broadcast dimensions are summed away here, in one place, for every op.
"""
import heapq

import numpy as np

from .. import devices
from . import higher_order
from .function import _FREED
from .grad_mode import _state
from .tensor import Tensor, _wrap


def sum_to_shape(grad, shape):
    """Sum ``grad`` over the dimensions that broadcasting added or stretched to reach ``shape``."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    if lead < 0:
        grad = grad.reshape((1,) * -lead + grad.shape)
        lead = 0
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and grad.shape[i + lead] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if lead:
        grad = grad.reshape(shape)
    if grad.shape != shape:
        grad = grad.reshape(shape)
    return grad



def _call_hook(hook, grad):
    return hook(grad)


def _before_backward(node, slot, run_hook):
    """What both passes do before a node's backward: refuse a freed graph or a saved tensor modified in
    place, and run the hooks on its output gradients (``slot``, replaced by what a hook returns)."""
    if node.saved is _FREED:
        raise RuntimeError(
            f"{node.name} backward: trying to backward through the graph a second time (or to use saved "
            f"results after they were freed). Pass retain_graph=True to the first backward() if you need to."
        )
    if node.version_checks:
        _check_versions(node)
    if node.out_hooks:
        for i, hooks in node.out_hooks.items():
            if slot[i] is not None:
                for hook in list(hooks):
                    out = run_hook(hook, slot[i])
                    if out is not None:
                        slot[i] = out

def _check_versions(node):
    for counter, seen in node.version_checks:
        if counter[0] != seen:
            raise RuntimeError(
                f"{node.name} backward: one of the tensors it saved for the gradient was modified by an in-place "
                f"operation (its version is {counter[0]}, expected {seen}). Use an out-of-place op (e.g. x = x + 1 "
                f"instead of x.add_(1)) or clone() the tensor before changing it."
            )


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Compute gradients of ``tensors`` with respect to graph leaves, accumulating into ``.grad``.

    ``grad_tensors`` is required for a non-scalar output (the vector in the vector-Jacobian product).
    ``retain_graph`` keeps saved arrays so backward can run through the graph again (default:
    ``create_graph``). ``inputs`` restricts accumulation to the given leaves. ``create_graph=True``
    records the gradient computation itself, so the gradients can be differentiated again.
    """
    if isinstance(tensors, Tensor):
        tensors = [tensors]
        grad_tensors = [grad_tensors]
    elif grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    if create_graph:
        retain = True if retain_graph is None else bool(retain_graph)
        leaves = None if inputs is None else [t for t in ([inputs] if isinstance(inputs, Tensor) else inputs)
                                              if t.grad_fn is None]
        _backward_graph(tensors, grad_tensors, retain, leaves)
        return
    retain = bool(retain_graph)
    only = None if inputs is None else {id(t) for t in ([inputs] if isinstance(inputs, Tensor) else inputs)}

    grads = {}
    heap = []
    counter = 0
    # A leaf's .grad must own its memory: ids of the arrays owning memory already handed to a leaf (or
    # passed in by the caller). A view of a fresh temporary is kept as is; a second claim on the same
    # memory, or a read-only broadcast, is copied.
    handed = set()
    # Leaves whose .grad took an op's gradient array without a copy in this pass: that array may still be
    # waiting in another node's slot (an op can hand one array to several inputs, as add does), so their
    # next contribution is added out of place.
    borrowed = set()

    def accumulate_leaf(leaf, g):
        if leaf._hooks:
            for hook in leaf._hooks:
                out = hook(g)
                if out is not None:
                    g = out
        if only is not None and id(leaf) not in only:
            return
        if leaf.grad is None:
            if type(g) is not np.ndarray:
                # A device's array (CuPy's) is copied with its own module: np.array would pull it to the host.
                g = g.copy() if type(g) in devices._array_types else np.array(g)
            elif not g.flags.writeable:
                g = np.array(g)
            else:
                owner = g if g.base is None else g.base
                if id(owner) in handed:
                    g = np.array(g)
                else:
                    handed.add(id(owner))
                    borrowed.add(id(leaf))
            # The gradient takes a C-ordered leaf's layout, as PyTorch's gradients follow their parameter's
            # strides: an optimizer's elementwise passes over a C-ordered parameter and a transposed
            # gradient run several times slower.
            if not g.flags.c_contiguous and leaf.array.flags.c_contiguous:
                g = np.ascontiguousarray(g)
            leaf.grad = _wrap(g, False, None, 0)
        elif leaf.grad.requires_grad:
            # A gradient recorded by create_graph=True may be saved in that graph: never change it in place.
            leaf.grad = _wrap(leaf.grad.array + g, False, None, 0)
        elif id(leaf) in borrowed:
            borrowed.discard(id(leaf))
            leaf.grad.array = leaf.grad.array + g
        else:
            leaf.grad.array += g

    for t, g in zip(tensors, grad_tensors):
        if not t.requires_grad:
            raise RuntimeError(
                "backward(): element 0 of tensors does not require grad and does not have a grad_fn; "
                "did you create it under no_grad, or forget requires_grad=True on an input?"
            )
        if g is None:
            if t.array.size != 1:
                raise RuntimeError(
                    f"backward(): grad can be implicitly created only for scalar outputs; this tensor has shape "
                    f"{tuple(t.array.shape)}, so pass gradient= with that shape"
                )
            g = np.ones_like(t.array)
        else:
            g = g.array if isinstance(g, Tensor) else np.asarray(g, dtype=t.array.dtype)
            if g.shape != t.array.shape:
                raise RuntimeError(
                    f"backward(): gradient has shape {tuple(g.shape)} but the tensor has shape {tuple(t.array.shape)}"
                )
            if g.dtype != t.array.dtype:
                g = g.astype(t.array.dtype)
            handed.add(id(g if g.base is None else g.base))
        node = t.grad_fn
        if node is None:
            accumulate_leaf(t, g)
            continue
        if node in grads:
            slot = grads[node]
            i = t._out_index
            slot[i] = g if slot[i] is None else slot[i] + g
        else:
            slot = [None] * node.n_out
            slot[t._out_index] = g
            grads[node] = slot
            heapq.heappush(heap, (-node.generation, counter, node))
            counter += 1

    while heap:
        _, _, node = heapq.heappop(heap)
        slot = grads.pop(node)
        _before_backward(node, slot, _call_hook)
        # A multi-output node receives one gradient per output, None for outputs nothing used.
        in_grads = node.backward(slot[0]) if node.n_out == 1 else node.backward(*slot)
        if type(in_grads) is not tuple:
            in_grads = (in_grads,)
        if not retain:
            node.saved = _FREED if node.saved else node.saved
        for edge, meta, g in zip(node.edges, node.metas, in_grads):
            if edge is None or g is None:
                continue
            shape, dtype = meta
            if g.shape != shape:
                g = sum_to_shape(g, shape)
            if g.dtype != dtype:
                g = g.astype(dtype)
            target, index = edge
            if isinstance(target, Tensor):
                accumulate_leaf(target, g)
                continue
            slot = grads.get(target)
            if slot is None:
                slot = [None] * target.n_out
                slot[index] = g
                grads[target] = slot
                heapq.heappush(heap, (-target.generation, counter, target))
                counter += 1
            elif slot[index] is None:
                slot[index] = g
            else:
                slot[index] = slot[index] + g


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False,
         is_grads_batched=False, materialize_grads=False):
    """Return the gradients of ``outputs`` with respect to ``inputs`` without touching ``.grad``.

    With ``create_graph=True`` the gradients are recorded in the graph (they can be differentiated
    again) and only the part of the graph that leads to ``inputs`` is visited.
    """
    if is_grads_batched:
        raise NotImplementedError("grad(is_grads_batched=True) is not supported; loop over the grad_outputs")
    if create_graph:
        single = isinstance(inputs, Tensor)
        inputs = [inputs] if single else list(inputs)
        if isinstance(outputs, Tensor):
            outputs = [outputs]
            grad_outputs = [grad_outputs]
        else:
            outputs = list(outputs)
            grad_outputs = [None] * len(outputs) if grad_outputs is None else list(grad_outputs)
        retain = True if retain_graph is None else bool(retain_graph)
        result = _backward_graph(outputs, grad_outputs, retain, None, inputs)
        out = []
        for t, g in zip(inputs, result):
            if g is None:
                if materialize_grads:
                    g = _wrap(np.zeros_like(t.array), False, None, 0)
                elif not allow_unused:
                    raise RuntimeError("grad(): one of the inputs was not used in the graph; pass allow_unused=True")
            out.append(g)
        return tuple(out)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    saved = [t.grad for t in inputs]
    for t in inputs:
        t.grad = None
    # Non-leaf inputs: capture their gradient with a node hook.
    captured = {}
    handles = []
    for t in inputs:
        if t.grad_fn is not None:
            def cap(g, key=id(t)):
                captured[key] = captured.get(key, 0) + g
            handles.append(t._add_node_hook(cap))
    try:
        backward(outputs, grad_outputs, retain_graph=retain_graph, create_graph=create_graph,
                 inputs=[t for t in inputs if t.grad_fn is None] or [])
        result = []
        for t in inputs:
            if t.grad_fn is not None:
                g = captured.get(id(t))
                result.append(None if g is None else _wrap(g, False, None, 0))
            else:
                result.append(t.grad)
            if result[-1] is None and materialize_grads:
                result[-1] = _wrap(np.zeros_like(t.array), False, None, 0)
            if result[-1] is None and not allow_unused:
                raise RuntimeError("grad(): one of the inputs was not used in the graph; pass allow_unused=True")
    finally:
        for t, g in zip(inputs, saved):
            t.grad = g
        for h in handles:
            h.remove()
    return tuple(result)


# --------------------------------------------------------------------------- create_graph=True
def _graph_hook(hook, g):
    """Run one gradient hook in the graph pass: tensor hooks get the tensor, array hooks its values."""
    tensor_hook = getattr(hook, "tensor_hook", None)
    if tensor_hook is not None:
        out = tensor_hook(g)
        return out if out is None or isinstance(out, Tensor) else _wrap(np.asarray(out, dtype=g.dtype), False, None, 0)
    out = hook(g.array)
    return None if out is None else _wrap(np.asarray(out), False, None, 0)


def _prune(roots, leaf_ids, capture):
    """The nodes from which a wanted leaf (``leaf_ids``) or a captured node output (``capture``) is reached."""
    needed = {}
    stack = [(node, False) for node in roots]
    while stack:
        node, done = stack.pop()
        if done:
            hit = node in capture
            for edge in node.edges:
                if edge is None:
                    continue
                target = edge[0]
                if isinstance(target, Tensor):
                    hit = hit or id(target) in leaf_ids
                else:
                    hit = hit or needed.get(target, False)
            needed[node] = hit
            continue
        if node in needed:
            continue
        needed[node] = False
        stack.append((node, True))
        for edge in node.edges:
            if edge is not None and not isinstance(edge[0], Tensor) and edge[0] not in needed:
                stack.append((edge[0], False))
    return needed


def _root_grad(t, g):
    if g is None:
        if t.array.size != 1:
            raise RuntimeError(
                f"backward(): grad can be implicitly created only for scalar outputs; this tensor has shape "
                f"{tuple(t.array.shape)}, so pass gradient= with that shape"
            )
        return _wrap(np.ones_like(t.array), False, None, 0)
    if not isinstance(g, Tensor):
        g = _wrap(np.asarray(g, dtype=t.array.dtype), False, None, 0)
    if g.shape != t.array.shape:
        raise RuntimeError(
            f"backward(): gradient has shape {tuple(g.shape)} but the tensor has shape {tuple(t.array.shape)}"
        )
    if g.dtype != t.array.dtype:
        g = higher_order.cast(g, t.array.dtype)
    return g


def _backward_graph(tensors, grad_tensors, retain, leaves=None, wanted=None):
    """The backward pass of ``create_graph=True``: gradients are tensors and every node contributes its
    ``grad_graph``, built from differentiable ops with grad mode on, so the result is part of the graph.

    Without ``wanted`` this accumulates into the leaves' ``.grad`` (only those in ``leaves`` when given).
    With ``wanted`` (a list of tensors, as ``grad()`` takes) it returns their gradients instead, visiting
    only the nodes that lead to them.
    """
    wanted_leaves = {}
    capture = {}
    if wanted is not None:
        for k, t in enumerate(wanted):
            if t.grad_fn is None:
                wanted_leaves.setdefault(id(t), []).append(k)
            else:
                capture.setdefault(t.grad_fn, []).append((t._out_index, k))
        results = [None] * len(wanted)
    only = None if leaves is None else {id(t) for t in leaves}

    roots = []
    for t in tensors:
        if not t.requires_grad:
            raise RuntimeError(
                "backward(): element 0 of tensors does not require grad and does not have a grad_fn; "
                "did you create it under no_grad, or forget requires_grad=True on an input?"
            )
        if t.grad_fn is not None:
            roots.append(t.grad_fn)
    needed = _prune(roots, wanted_leaves, capture) if wanted is not None else None

    def add(a, b):
        return b if a is None else a + b

    # A leaf's gradient is summed over all its uses first; its hooks then see the total once, as in PyTorch.
    leaf_grads = {}

    def to_leaf(leaf, g):
        entry = leaf_grads.get(id(leaf))
        leaf_grads[id(leaf)] = (leaf, g) if entry is None else (leaf, entry[1] + g)

    def finish_leaf(leaf, g):
        if leaf._hooks:
            for hook in leaf._hooks:
                out = _graph_hook(hook, g)
                if out is not None:
                    g = out
        if wanted is not None:
            for k in wanted_leaves.get(id(leaf), ()):
                results[k] = add(results[k], g)
            return
        if only is not None and id(leaf) not in only:
            return
        from ..ops.shape import clone

        # The leaf gets its own copy (recorded, so it stays differentiable): the same gradient tensor may
        # reach several leaves, and an optimizer changes .grad in place.
        leaf.grad = clone(g) if leaf.grad is None else leaf.grad + g

    grads = {}
    heap = []
    counter = 0
    prev = _state.enabled
    _state.enabled = True
    try:
        for t, g in zip(tensors, grad_tensors):
            g = _root_grad(t, g)
            node = t.grad_fn
            if node is None:
                to_leaf(t, g)
                continue
            if needed is not None and not needed.get(node, False):
                continue
            slot = grads.get(node)
            if slot is None:
                slot = grads[node] = [None] * node.n_out
                heapq.heappush(heap, (-node.generation, counter, node))
                counter += 1
            slot[t._out_index] = add(slot[t._out_index], g)

        while heap:
            _, _, node = heapq.heappop(heap)
            slot = grads.pop(node)
            _before_backward(node, slot, _graph_hook)
            if wanted is not None:
                for i, k in capture.get(node, ()):
                    if slot[i] is not None:
                        results[k] = add(results[k], slot[i])
            mask = None
            if needed is not None:
                mask = [edge is not None and (id(edge[0]) in wanted_leaves if isinstance(edge[0], Tensor)
                                              else needed.get(edge[0], False)) for edge in node.edges]
                if not any(mask):
                    continue
            node.graph_mask = mask
            try:
                in_grads = node.grad_graph(*slot)
            finally:
                node.graph_mask = None
            if type(in_grads) is not tuple:
                in_grads = (in_grads,)
            if not retain:
                node.saved = _FREED if node.saved else node.saved
            for i, (edge, meta, g) in enumerate(zip(node.edges, node.metas, in_grads)):
                if edge is None or g is None or (mask is not None and not mask[i]):
                    continue
                if not isinstance(g, Tensor):
                    g = _wrap(np.asarray(g), False, None, 0)
                shape, dtype = meta
                if g.shape != shape:
                    g = higher_order.sum_to_shape(g, shape)
                if g.dtype != dtype:
                    g = higher_order.cast(g, dtype)
                target, index = edge
                if isinstance(target, Tensor):
                    to_leaf(target, g)
                    continue
                slot = grads.get(target)
                if slot is None:
                    slot = grads[target] = [None] * target.n_out
                    heapq.heappush(heap, (-target.generation, counter, target))
                    counter += 1
                slot[index] = add(slot[index], g)
        for leaf, g in leaf_grads.values():
            finish_leaf(leaf, g)
    finally:
        _state.enabled = prev
    return results if wanted is not None else None


def _tensor_backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (see ``somanet.autograd.backward``)."""
    backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)


# Attached here rather than defined in tensor.py, which the engine imports: Tensor stays below the engine.
_tensor_backward.__name__, _tensor_backward.__qualname__ = "backward", "Tensor.backward"
Tensor.backward = _tensor_backward
