"""``MLP``: a multi-layer perceptron for the zoo, built as a ``Sequential`` with PyTorch's layout."""
from .. import nn

__all__ = ["MLP"]

_ACTIVATIONS = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid, "elu": nn.ELU, "selu": nn.SELU, "mish": nn.Mish, "identity": nn.Identity,
}


def _activation(activation):
    if isinstance(activation, str):
        key = activation.lower()
        if key not in _ACTIVATIONS:
            raise ValueError(f"MLP: unknown activation {activation!r}; expected one of {sorted(_ACTIVATIONS)}, "
                             f"a Module class or a callable returning a Module")
        return _ACTIVATIONS[key]()
    if isinstance(activation, nn.Module):
        raise TypeError("MLP: pass the activation's class or a factory (e.g. nn.ReLU), not an instance, so "
                        "each hidden layer gets its own module")
    module = activation()
    if not isinstance(module, nn.Module):
        raise TypeError(f"MLP: activation factory returned {type(module).__name__}, expected an nn.Module")
    return module


class MLP(nn.Sequential):
    """``in_features -> hidden_sizes... -> out_features`` fully connected network.

    Each hidden block is ``Linear``, then ``BatchNorm1d`` if ``batch_norm``, the ``activation`` (a name
    such as 'relu', 'gelu', 'tanh', or a Module class), then ``Dropout(dropout)`` if ``dropout > 0``. The
    last layer is a plain ``Linear`` producing logits. Input ``(N, in_features)``, output
    ``(N, out_features)``.

    >>> model = MLP(784, [512, 256], 10, dropout=0.1)
    >>> model(somanet.randn(32, 784)).shape
    (32, 10)
    """

    def __init__(self, in_features, hidden_sizes, out_features, activation="relu", dropout=0.0, batch_norm=False):
        if isinstance(hidden_sizes, int):
            hidden_sizes = [hidden_sizes]
        hidden_sizes = list(hidden_sizes)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLP: dropout must be in [0, 1), got {dropout}")
        layers = []
        width = in_features
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)
        self.in_features = in_features
        self.hidden_sizes = hidden_sizes
        self.out_features = out_features
