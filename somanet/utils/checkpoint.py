"""Activation checkpointing: trade compute for memory by recomputing a block's forward during backward.

``checkpoint(fn, *args)`` runs ``fn`` without recording its graph, so its intermediate activations are
freed at once; in backward it runs ``fn`` again with the graph on, from the same inputs and the same random
state (dropout draws the same mask), and backpropagates through that. Gradients are identical to running
``fn`` plainly; peak memory holds one block's activations instead of all of them.

>>> y = checkpoint(block, x)                          # doctest: +SKIP
>>> y = checkpoint_sequential(model, 4, x)             # a Sequential in 4 segments  # doctest: +SKIP
"""
from ..autograd import Function, backward as _backward, enable_grad, grad_mode
from ..autograd.tensor import Tensor
from ..random import get_rng_state, set_rng_state


def _detached_inputs(args):
    out = []
    for a in args:
        if isinstance(a, Tensor):
            d = a.detach()
            d.requires_grad = a.requires_grad
            out.append(d)
        else:
            out.append(a)
    return out


class _Checkpoint(Function):
    @staticmethod
    def forward(ctx, run_function, preserve_rng_state, kwargs, _anchor, *args):
        ctx.run_function, ctx.kwargs = run_function, kwargs
        ctx.rng_state = get_rng_state() if preserve_rng_state else None
        ctx.save_for_backward(*[a for a in args if isinstance(a, Tensor)])
        ctx.args = [None if isinstance(a, Tensor) else a for a in args]
        return run_function(*args, **kwargs)

    @staticmethod
    def backward(ctx, *grads):
        if grad_mode._state.enabled:
            # Only create_graph=True runs a backward with grad mode on; the recomputed block's gradients
            # below are plain arrays, so they would come back silently detached.
            raise RuntimeError("create_graph=True: checkpoint's backward is not differentiable in somanet yet; "
                               "call the block without checkpoint() where second derivatives are needed")
        saved = iter(ctx.saved_tensors)
        args = [next(saved) if a is None else a for a in ctx.args]
        inputs = _detached_inputs(args)
        current = None
        if ctx.rng_state is not None:
            current = get_rng_state()
            set_rng_state(ctx.rng_state)
        try:
            with enable_grad():
                outputs = ctx.run_function(*inputs, **ctx.kwargs)
        finally:
            if current is not None:
                set_rng_state(current)
        outputs = (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)
        pairs = [(o, g) for o, g in zip(outputs, grads)
                 if isinstance(o, Tensor) and o.requires_grad and g is not None]
        if pairs:
            _backward([o for o, _ in pairs], [g for _, g in pairs])
        return (None, None, None, None) + tuple(
            x.grad if isinstance(x, Tensor) and x.requires_grad else None for x in inputs)


# A tensor that requires grad, passed to every checkpoint so that the block is recorded (and recomputed)
# even when none of its inputs requires grad: its parameters still need their gradients.
_ANCHOR = Tensor(0.0, requires_grad=True)


def checkpoint(function, *args, use_reentrant=None, context_fn=None, determinism_check="default", debug=False,
               preserve_rng_state=True, **kwargs):
    """Run ``function(*args, **kwargs)`` without keeping its activations; recompute them in backward.

    ``preserve_rng_state`` restores the random state before recomputing, so random layers (dropout) give
    bit-identical results. ``use_reentrant``, ``context_fn``, ``determinism_check`` and ``debug`` are
    accepted for PyTorch code and change nothing.
    """
    if not grad_mode._state.enabled:
        return function(*args, **kwargs)
    return _Checkpoint.apply(function, preserve_rng_state, kwargs, _ANCHOR, *args)


def checkpoint_sequential(functions, segments, input, use_reentrant=None, **kwargs):  # noqa: A002
    """Run a Sequential (or list of modules) in ``segments`` chunks, checkpointing all but the last."""
    fns = list(functions.children()) if hasattr(functions, "children") else list(functions)
    if segments < 1:
        raise ValueError(f"checkpoint_sequential(): segments must be at least 1, got {segments}")
    size = max(1, len(fns) // segments)

    def run(chunk):
        def f(x):
            for fn in chunk:
                x = fn(x)
            return x
        return f

    end = 0
    for start in range(0, size * (segments - 1), size):
        end = start + size
        input = checkpoint(run(fns[start:end]), input, use_reentrant=use_reentrant, **kwargs)  # noqa: A001
    return run(fns[end:])(input)
