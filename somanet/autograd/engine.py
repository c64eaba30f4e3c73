"""Reverse-mode backward pass.

Nodes are visited in descending generation order with a heap: a node's generation is one more than
the highest of the nodes that produced its inputs, so when a node is popped every consumer of its
outputs has already run and its gradient is complete. No recursion, so a 100,000-op chain works.
Broadcast dimensions are summed away here, in one place, for every op.
"""
import heapq

import numpy as np

from .function import _FREED
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
    ``retain_graph`` keeps saved arrays so backward can run through the graph again. ``inputs``
    restricts accumulation to the given leaves.
    """
    if create_graph:
        raise NotImplementedError(
            "backward(create_graph=True): higher-order gradients are not supported by somanet yet; "
            "only first-order gradients can be computed"
        )
    if isinstance(tensors, Tensor):
        tensors = [tensors]
        grad_tensors = [grad_tensors]
    elif grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    retain = bool(retain_graph)
    only = None if inputs is None else {id(t) for t in ([inputs] if isinstance(inputs, Tensor) else inputs)}

    grads = {}
    heap = []
    counter = 0
    # A leaf's .grad must own its memory: ids of the arrays owning memory already handed to a leaf (or
    # passed in by the caller). A view of a fresh temporary is kept as is; a second claim on the same
    # memory, or a read-only broadcast, is copied.
    handed = set()

    def accumulate_leaf(leaf, g):
        if leaf._hooks:
            for hook in leaf._hooks:
                out = hook(g)
                if out is not None:
                    g = out
        if only is not None and id(leaf) not in only:
            return
        if leaf.grad is None:
            if type(g) is not np.ndarray or not g.flags.writeable:
                g = np.array(g)
            else:
                owner = g if g.base is None else g.base
                if id(owner) in handed:
                    g = np.array(g)
                else:
                    handed.add(id(owner))
            # The gradient takes a C-ordered leaf's layout, as PyTorch's gradients follow their parameter's
            # strides: an optimizer's elementwise passes over a C-ordered parameter and a transposed
            # gradient run several times slower.
            if not g.flags.c_contiguous and leaf.array.flags.c_contiguous:
                g = np.ascontiguousarray(g)
            leaf.grad = _wrap(g, False, None, 0)
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
                        out = hook(slot[i])
                        if out is not None:
                            slot[i] = out
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


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Return the gradients of ``outputs`` with respect to ``inputs`` without touching ``.grad``."""
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
            if result[-1] is None and not allow_unused:
                raise RuntimeError("grad(): one of the inputs was not used in the graph; pass allow_unused=True")
    finally:
        for t, g in zip(inputs, saved):
            t.grad = g
        for h in handles:
            h.remove()
    return tuple(result)
