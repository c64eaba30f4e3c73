"""Multi-step time-series forecasters and the seasonal-naive baseline.

Every forecaster maps a window ``x`` ``(B, input_len, C)`` to the next ``horizon`` steps
``(B, horizon, C_out)`` in one pass (direct multi-step forecasting), so it trains with the ordinary
supervised ``Trainer`` loop and an ``"mse"`` or ``"l1"`` loss on the windows of
``somanet.data.datasets.TimeSeriesWindows``.

With ``normalize=True`` (the default) each window is standardised by its own mean and standard
deviation per channel before the network and the forecast is scaled back (instance normalisation, as
in RevIN without the learned affine part): the network then models the shape of the series, not its
level, which drifts with a trend.

``seasonal_naive(x, horizon, season)`` forecasts the value one season earlier, the baseline that a
forecaster of a seasonal series must beat.
"""
import numpy as np

from .. import nn
from ..autograd.tensor import Tensor

__all__ = ["LSTMForecaster", "TransformerForecaster", "seasonal_naive"]

_EPS = 1e-5


def _check_window(module, x, channels):
    owner = type(module).__name__
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: expected a Tensor window (B, L, C), got {type(x).__name__}")
    if x.ndim != 3 or x.shape[2] != channels:
        raise ValueError(f"{owner}: expected input of shape (B, L, {channels}), got {tuple(x.shape)}")


class _Forecaster(nn.Module):
    def _setup(self, input_size, horizon, output_size, normalize):
        for name, value in (("input_size", input_size), ("horizon", horizon)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be an int >= 1, got {value!r}")
        output_size = input_size if output_size is None else output_size
        if normalize and output_size != input_size:
            raise ValueError(f"{type(self).__name__}: normalize=True scales the forecast back with the input's "
                             f"statistics, so output_size ({output_size}) must equal input_size ({input_size})")
        self.input_size, self.horizon, self.output_size, self.normalize = input_size, horizon, output_size, normalize

    def _scale(self, x):
        if not self.normalize:
            return x, None, None
        mean = x.mean(1, keepdim=True).detach()
        std = (x.var(1, keepdim=True, unbiased=False) + _EPS).sqrt().detach()
        return (x - mean) / std, mean, std

    def _unscale(self, y, mean, std):
        y = y.reshape(y.shape[0], self.horizon, self.output_size)
        return y if mean is None else y * std + mean


class LSTMForecaster(_Forecaster):
    """An LSTM reads the window; a linear layer maps its last hidden state to all ``horizon`` steps.

    Args:
        input_size: channels ``C`` of the series.
        hidden_size: the LSTM's state.
        horizon: steps forecast at once.
        num_layers, dropout: of the LSTM (dropout between layers).
        output_size: channels forecast (``input_size`` by default).
        normalize: standardise each window (see the module documentation).

    ``forward(x (B, L, C)) -> (B, horizon, output_size)``.

    >>> LSTMForecaster(1, 16, horizon=4)(somanet.randn(2, 24, 1)).shape
    (2, 4, 1)
    """

    def __init__(self, input_size=1, hidden_size=64, horizon=1, num_layers=1, dropout=0.0, output_size=None,
                 normalize=True):
        super().__init__()
        self._setup(input_size, horizon, output_size, normalize)
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size, horizon * self.output_size)

    def forward(self, x):
        _check_window(self, x, self.input_size)
        x, mean, std = self._scale(x)
        out, _ = self.lstm(x)
        return self._unscale(self.head(out[:, -1]), mean, std)


class TransformerForecaster(_Forecaster):
    """A small Transformer encoder over patches of the window, with a linear head on all patches.

    The window is cut into ``input_len / patch_len`` non-overlapping patches (PatchTST's idea: fewer,
    richer tokens); each patch is projected to ``d_model``, gets a learned position, and after the
    (pre-norm) encoder layers all patch vectors are flattened into one linear layer that gives the
    ``horizon`` steps.

    Args:
        input_size: channels ``C``.
        input_len: the window length ``L`` (a multiple of ``patch_len``).
        horizon: steps forecast at once.
        patch_len: steps per token.
        d_model, nhead, num_layers, dim_feedforward, dropout: of the encoder.
        output_size, normalize: as ``LSTMForecaster``.

    ``forward(x (B, input_len, C)) -> (B, horizon, output_size)``.
    """

    def __init__(self, input_size=1, input_len=96, horizon=1, patch_len=8, d_model=32, nhead=4, num_layers=2,
                 dim_feedforward=64, dropout=0.0, output_size=None, normalize=True):
        super().__init__()
        self._setup(input_size, horizon, output_size, normalize)
        if isinstance(patch_len, bool) or not isinstance(patch_len, int) or patch_len < 1 or input_len % patch_len:
            raise ValueError(f"TransformerForecaster: input_len ({input_len}) must be a multiple of patch_len "
                             f"({patch_len})")
        self.input_len, self.patch_len = input_len, patch_len
        self.num_patches = input_len // patch_len
        self.embed = nn.Linear(patch_len * input_size, d_model)
        self.pos = nn.LearnedPositionalEncoding(self.num_patches, d_model, batch_first=True)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(self.num_patches * d_model, horizon * self.output_size)

    def forward(self, x):
        _check_window(self, x, self.input_size)
        if x.shape[1] != self.input_len:
            raise ValueError(f"TransformerForecaster: expected windows of input_len {self.input_len} steps, got "
                             f"{x.shape[1]}")
        x, mean, std = self._scale(x)
        b = x.shape[0]
        tokens = self.embed(x.reshape(b, self.num_patches, self.patch_len * self.input_size))
        h = self.encoder(self.pos(tokens))
        return self._unscale(self.head(h.reshape(b, -1)), mean, std)


def seasonal_naive(x, horizon, season):
    """The seasonal-naive forecast: each future step repeats the value one ``season`` earlier.

    ``x`` ``(B, L, C)`` or ``(L, C)`` (array or Tensor) with ``L >= season``; returns ``(B, horizon, C)``
    (or ``(horizon, C)``) as a NumPy array: ``y[h] = x[L - season + (h mod season)]``.
    """
    arr = np.asarray(x.array if isinstance(x, Tensor) else x)
    if arr.ndim not in (2, 3):
        raise ValueError(f"seasonal_naive: expected x of shape (B, L, C) or (L, C), got {arr.shape}")
    length = arr.shape[-2]
    if isinstance(season, bool) or not isinstance(season, (int, np.integer)) or not 1 <= season <= length:
        raise ValueError(f"seasonal_naive: season must be an int in [1, L={length}], got {season!r}")
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"seasonal_naive: horizon must be an int >= 1, got {horizon!r}")
    idx = length - season + np.arange(horizon) % season
    return np.take(arr, idx, axis=-2)
