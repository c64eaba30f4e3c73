"""Collaborative filtering from implicit feedback: matrix factorisation and neural collaborative filtering.

Both models map ``(users, items)`` int64 index tensors of the same shape to one logit per pair, the
model's belief that the user interacts with the item. They train on implicit feedback as in He et al.
(2017), "Neural Collaborative Filtering": observed pairs are positives, items the user never touched are
sampled as negatives, and the loss is the binary cross-entropy of the logits
(``training_step(batch, batch_idx)`` with batches ``(users, items, labels)``, as
``somanet.data.datasets.ImplicitFeedback`` gives them). ``somanet.train.metrics.hit_rate_at_k`` and
``ndcg_at_k`` score them with the leave-one-out protocol.

* ``MatrixFactorization``: ``b + b_u + b_i + <p_u, q_i>``.
* ``NCF`` (NeuMF): a GMF branch (the element-wise product of user and item embeddings) and an MLP
  branch (a tower over the concatenated user and item embeddings, with its own embeddings), joined by
  a linear layer on their concatenation.

>>> import somanet
>>> model = NCF(num_users=10, num_items=20)
>>> model(somanet.tensor([0, 3]), somanet.tensor([5, 19])).shape
(2,)
"""
from .. import nn
from ..autograd.tensor import Tensor
from ..nn import init
from ..ops.creation import zeros
from ..ops.loss import binary_cross_entropy_with_logits
from ..ops.shape import cat

__all__ = ["MatrixFactorization", "NCF"]


def _check_count(value, name, owner):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


class _ImplicitFeedbackModel(nn.Module):
    """Input checks and the BCE training step shared by the two models."""

    def _check(self, users, items):
        owner = type(self).__name__
        for name, x in (("users", users), ("items", items)):
            if not isinstance(x, Tensor) or x.array.dtype.kind not in "iu":
                raise TypeError(f"{owner}: {name} must be an integer Tensor of indices, got "
                                f"{getattr(x, 'dtype', type(x).__name__)}")
        if tuple(users.shape) != tuple(items.shape):
            raise ValueError(f"{owner}: users and items must have the same shape, got {tuple(users.shape)} and "
                             f"{tuple(items.shape)}")
        for name, x, n in (("users", users, self.num_users), ("items", items, self.num_items)):
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= n):
                raise IndexError(f"{owner}: {name} indices must be in [0, {n - 1}], got the range "
                                 f"[{int(x.min())}, {int(x.max())}]")

    def _loss(self, batch, owner):
        if not isinstance(batch, (list, tuple)) or len(batch) != 3:
            raise TypeError(f"{type(self).__name__}.{owner}: a batch must be (users, items, labels), got "
                            f"{type(batch).__name__}")
        users, items, labels = batch
        logits = self(users, items)
        return binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))

    def training_step(self, batch, batch_idx):
        """The binary cross-entropy of a ``(users, items, labels)`` batch (labels 1 for observed pairs,
        0 for sampled negatives), for ``somanet.train.Trainer``."""
        return self._loss(batch, "training_step")

    def validation_step(self, batch, batch_idx):
        """The binary cross-entropy of a validation batch (logged as ``val_loss``)."""
        return self._loss(batch, "validation_step")


class MatrixFactorization(_ImplicitFeedbackModel):
    """Matrix factorisation: the logit of ``(u, i)`` is ``b + b_u + b_i + <p_u, q_i>``.

    Args:
        num_users, num_items: sizes of the index ranges.
        embedding_dim: length of the factors ``p_u`` and ``q_i``.
        bias: learn the global, user and item biases.
        init_std: standard deviation of the initial factors (biases start at 0).

    Attributes: ``user_embedding``, ``item_embedding`` (``nn.Embedding``) and, with ``bias``,
    ``user_bias``, ``item_bias`` (``nn.Embedding`` of width 1) and ``global_bias`` (a scalar Parameter).
    """

    def __init__(self, num_users, num_items, embedding_dim=32, bias=True, init_std=0.01):
        super().__init__()
        self.num_users = _check_count(num_users, "num_users", "MatrixFactorization")
        self.num_items = _check_count(num_items, "num_items", "MatrixFactorization")
        self.embedding_dim = _check_count(embedding_dim, "embedding_dim", "MatrixFactorization")
        self.user_embedding = nn.Embedding(num_users, embedding_dim)
        self.item_embedding = nn.Embedding(num_items, embedding_dim)
        self.bias = bool(bias)
        if self.bias:
            self.user_bias = nn.Embedding(num_users, 1)
            self.item_bias = nn.Embedding(num_items, 1)
            self.global_bias = nn.Parameter(zeros(()))
        self.init_std = init_std
        self.reset_parameters()

    def reset_parameters(self):
        """Factors from ``N(0, init_std**2)``, biases 0."""
        init.normal_(self.user_embedding.weight, std=self.init_std)
        init.normal_(self.item_embedding.weight, std=self.init_std)
        if self.bias:
            init.zeros_(self.user_bias.weight)
            init.zeros_(self.item_bias.weight)
            init.zeros_(self.global_bias)

    def forward(self, users, items):
        """Logits of the pairs ``(users[k], items[k])``, with the shape of ``users``."""
        self._check(users, items)
        out = (self.user_embedding(users) * self.item_embedding(items)).sum(dim=-1)
        if self.bias:
            out = out + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1) + self.global_bias
        return out

    def extra_repr(self):
        return f"num_users={self.num_users}, num_items={self.num_items}, embedding_dim={self.embedding_dim}"


class NCF(_ImplicitFeedbackModel):
    """Neural collaborative filtering (NeuMF, He et al. 2017): a GMF and an MLP branch over separate
    user and item embeddings, fused by a linear layer.

    * GMF: ``p_u * q_i`` (element-wise), with embeddings of ``embedding_dim``;
    * MLP: ``[p'_u, q'_i]`` (embeddings of ``mlp_layers[0] // 2`` each) through ``Linear + ReLU``
      layers of widths ``mlp_layers[1:]``, with dropout ``dropout`` after each;
    * output: ``Linear(embedding_dim + mlp_layers[-1], 1)`` on the two branches concatenated.

    Args:
        num_users, num_items: sizes of the index ranges.
        embedding_dim: predictive factors of the GMF branch.
        mlp_layers: the MLP tower's widths, input first (even, the two embeddings concatenated).
        dropout: dropout probability after each tower layer.

    Initialisation as the paper's code: embeddings ``N(0, 0.01**2)``, tower layers Xavier-uniform,
    the output layer Kaiming-uniform for a sigmoid, biases 0.
    """

    def __init__(self, num_users, num_items, embedding_dim=8, mlp_layers=(64, 32, 16, 8), dropout=0.0):
        super().__init__()
        self.num_users = _check_count(num_users, "num_users", "NCF")
        self.num_items = _check_count(num_items, "num_items", "NCF")
        self.embedding_dim = _check_count(embedding_dim, "embedding_dim", "NCF")
        mlp_layers = tuple(mlp_layers)
        if len(mlp_layers) < 1 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in mlp_layers) \
                or mlp_layers[0] % 2:
            raise ValueError(f"NCF: mlp_layers must be positive ints with an even first width (two embeddings "
                             f"concatenated), got {mlp_layers!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"NCF: dropout must be in [0, 1), got {dropout!r}")
        self.mlp_layers = mlp_layers
        half = mlp_layers[0] // 2
        self.gmf_user = nn.Embedding(num_users, embedding_dim)
        self.gmf_item = nn.Embedding(num_items, embedding_dim)
        self.mlp_user = nn.Embedding(num_users, half)
        self.mlp_item = nn.Embedding(num_items, half)
        tower = []
        for cin, cout in zip(mlp_layers[:-1], mlp_layers[1:]):
            tower += [nn.Linear(cin, cout), nn.ReLU()]
            if dropout:
                tower.append(nn.Dropout(dropout))
        self.mlp = nn.Sequential(*tower)
        self.predict_layer = nn.Linear(embedding_dim + mlp_layers[-1], 1)
        self.reset_parameters()

    def reset_parameters(self):
        """The paper's initialisation (see the class documentation)."""
        for emb in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            init.normal_(emb.weight, std=0.01)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                init.xavier_uniform_(layer.weight)
                init.zeros_(layer.bias)
        init.kaiming_uniform_(self.predict_layer.weight, a=1, nonlinearity="sigmoid")
        init.zeros_(self.predict_layer.bias)

    def forward(self, users, items):
        """Logits of the pairs ``(users[k], items[k])``, with the shape of ``users``."""
        self._check(users, items)
        gmf = self.gmf_user(users) * self.gmf_item(items)
        mlp = self.mlp(cat([self.mlp_user(users), self.mlp_item(items)], dim=-1))
        return self.predict_layer(cat([gmf, mlp], dim=-1)).squeeze(-1)

    def extra_repr(self):
        return (f"num_users={self.num_users}, num_items={self.num_items}, embedding_dim={self.embedding_dim}, "
                f"mlp_layers={self.mlp_layers}")
