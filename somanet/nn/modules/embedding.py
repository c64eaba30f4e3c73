"""``Embedding``: a lookup table of learned vectors indexed by integers."""
import numpy as np

from ... import backend
from ...autograd import grad_mode
from ...autograd.tensor import Tensor
from .. import functional as F
from .. import init
from .module import Module, Parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``: integer indices ``(*)`` give
    ``(*, embedding_dim)``.

    ``weight`` ``(num_embeddings, embedding_dim)`` is initialised from ``N(0, 1)``; the row ``padding_idx``
    is zeroed and never receives a gradient. ``max_norm`` renormalises looked-up rows in place to at most
    that ``norm_type``-norm. ``scale_grad_by_freq`` divides gradients by the index frequency in the batch.

    >>> emb = Embedding(10, 3, padding_idx=0)
    >>> emb(somanet.tensor([[1, 2, 0]])).shape
    (1, 3, 3)
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within num_embeddings "
                                 f"[-{num_embeddings}, {num_embeddings - 1}]")
            padding_idx = padding_idx % num_embeddings
        if sparse:
            raise NotImplementedError("Embedding(sparse=True): sparse gradients are not supported; use sparse=False")
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            dt = backend.to_dtype(dtype) or backend.default_float
            self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype=dt), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            shape = tuple(_weight.shape)
            if shape != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {shape}, expected ({num_embeddings}, {embedding_dim})")
            data = _weight.array if isinstance(_weight, Tensor) else backend.as_array(_weight)
            self.weight = Parameter(data, requires_grad=not _freeze)

    def reset_parameters(self):
        init.normal_(self.weight)
        self._fill_padding_idx_with_zero()

    def _fill_padding_idx_with_zero(self):
        if self.padding_idx is not None:
            with grad_mode.no_grad():
                self.weight.array[self.padding_idx] = 0

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        if self.sparse:
            s += ", sparse=True"
        return s

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, sparse=False):
        """An ``Embedding`` whose weight is ``embeddings`` ``(num_embeddings, embedding_dim)`` (shared, not
        copied); ``freeze=True`` keeps it fixed (``requires_grad=False``)."""
        if len(getattr(embeddings, "shape", ())) != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D (num_embeddings, embedding_dim), "
                             f"got shape {tuple(getattr(embeddings, 'shape', ()))}")
        rows, cols = embeddings.shape
        return cls(rows, cols, _weight=embeddings, _freeze=freeze, padding_idx=padding_idx, max_norm=max_norm,
                   norm_type=norm_type, scale_grad_by_freq=scale_grad_by_freq, sparse=sparse)
