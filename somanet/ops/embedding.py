"""Embedding lookup as one fused op: forward gathers rows of the weight, backward scatter-adds the
gradient rows back (repeated indices accumulate) and leaves the padding row without gradient."""
from .. import backend
from ..autograd import grad_mode
from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module

__all__ = ["embedding"]


def scatter_add_rows(index, rows, num_rows):
    """``out[index[i]] += rows[i]`` for a 1-D ``index`` and ``rows (len(index), D)``; out is ``(num_rows, D)``.

    Sorting the indices and summing each run with ``add.reduceat`` is about twice as fast as ``np.add.at``.
    """
    xp = array_module(rows)
    out = xp.zeros((num_rows,) + rows.shape[1:], dtype=rows.dtype)
    if index.size == 0:
        return out
    order = xp.argsort(index, kind="stable")
    sorted_index = index[order]
    # Where each run of equal indices starts; filled in place, which spares concatenate's copy.
    run_start = xp.empty(index.size, bool)
    run_start[0] = True
    xp.not_equal(sorted_index[1:], sorted_index[:-1], out=run_start[1:])
    starts = xp.flatnonzero(run_start)
    out[sorted_index[starts]] = xp.add.reduceat(rows[order], starts, axis=0)
    return out


class Embedding(Function):
    """``weight[indices]``: ``weight (V, D)``, integer ``indices (*)`` -> ``(*, D)``."""

    def forward(ctx, weight, indices, padding_idx=None, scale_grad_by_freq=False):
        ctx.save_for_backward(indices)
        ctx.weight_shape = weight.shape
        ctx.padding_idx = padding_idx
        ctx.scale_grad_by_freq = scale_grad_by_freq
        return weight[indices]

    def backward(ctx, grad):
        (indices,) = ctx.saved
        num, dim = ctx.weight_shape
        flat = indices.reshape(-1)
        rows = grad.reshape(-1, dim)
        if ctx.scale_grad_by_freq:
            counts = array_module(flat).bincount(flat, minlength=num)
            rows = rows / counts[flat][:, None].astype(rows.dtype)
        gw = scatter_add_rows(flat, rows, num)
        if ctx.padding_idx is not None:
            gw[ctx.padding_idx] = 0
        return gw, None

    def grad_graph(ctx, grad):
        (indices,) = ctx.saved
        # The lookup with the padding row zeroed. As in PyTorch, scale_grad_by_freq does not scale it: that
        # scaling makes backward differ from the derivative of forward, and the second pass follows forward.
        factor = None
        if ctx.padding_idx is not None:
            factor = Tensor((indices != ctx.padding_idx)[..., None].astype(grad.dtype))

        def forward(v, _):
            out = Embedding.apply(v, indices)
            return out if factor is None else out * factor

        return ctx.graph_linear((grad,), forward)


def _renorm_rows(weight, indices, max_norm, norm_type):
    """Scale the referenced rows of ``weight`` whose ``norm_type``-norm exceeds ``max_norm`` back to it,
    in place and without recording, as PyTorch does."""
    w = weight.array
    xp = array_module(w)
    rows = xp.unique(indices)
    norms = xp.linalg.norm(w[rows], ord=norm_type, axis=1)
    over = norms > max_norm
    if over.any():
        scale = (max_norm / (norms[over] + 1e-7)).astype(w.dtype)
        w[rows[over]] *= scale[:, None]
        weight._version[0] += 1


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Look up rows of ``weight`` ``(num_embeddings, embedding_dim)`` for integer indices ``input`` ``(*)``;
    returns ``(*, embedding_dim)``.

    The row ``padding_idx`` gets no gradient. ``max_norm`` renormalises the looked-up rows of ``weight``
    in place to at most that ``norm_type``-norm. ``scale_grad_by_freq`` divides each row's gradient by how
    often its index occurs in ``input``.

    >>> embedding(somanet.tensor([[0, 2]]), somanet.randn(10, 3)).shape
    (1, 2, 3)
    """
    if sparse:
        raise NotImplementedError("embedding(sparse=True): sparse gradients are not supported; use sparse=False")
    if not isinstance(weight, Tensor):
        weight = Tensor(backend.as_array(weight))
    if weight.ndim != 2:
        raise ValueError(f"embedding(): weight must be 2-D (num_embeddings, embedding_dim), got shape "
                         f"{tuple(weight.shape)}")
    # An index array or list (not a tensor) is made where the weight is, as PyTorch makes a list.
    idx = input.array if isinstance(input, Tensor) else array_module(weight.array).asarray(input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding(): expected integer indices (dtype int64 or int32), got dtype {idx.dtype}")
    num = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= num):
        bad = idx[(idx < 0) | (idx >= num)].flat[0]
        raise IndexError(f"embedding(): index {int(bad)} is out of range for an embedding with {num} rows "
                         f"(expected indices in [0, {num - 1}])")
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError(f"embedding(): padding_idx {padding_idx} must be within [-{num}, {num - 1}]")
        padding_idx = padding_idx % num
    if max_norm is not None:
        with grad_mode.no_grad():
            _renorm_rows(weight, idx, max_norm, norm_type)
    return Embedding.apply(weight, idx, padding_idx=padding_idx, scale_grad_by_freq=scale_grad_by_freq)
