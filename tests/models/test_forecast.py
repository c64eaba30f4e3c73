"""Forecasters: the LSTM and Transformer forecasters against PyTorch twins with the same weights
(outputs and every gradient, with and without window normalisation), the seasonal-naive baseline
by hand, and a short sines-forecast run that must beat the seasonal-naive and window-mean forecasts on
the held-out tail."""
import json
import os

import numpy as np
import pytest

import somanet
from somanet.models.forecast import LSTMForecaster, TransformerForecaster, seasonal_naive

from reference import compare_modules, copy_state, torch_or_skip


def _torch_scale(torch, x, normalize):
    if not normalize:
        return x, None, None
    mean = x.mean(1, keepdim=True).detach()
    std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5).detach()
    return (x - mean) / std, mean, std


def _torch_unscale(y, horizon, channels, mean, std):
    y = y.reshape(y.shape[0], horizon, channels)
    return y if mean is None else y * std + mean


@pytest.mark.parametrize("normalize,layers", [(True, 1), (False, 2)])
def test_lstm_forecaster_matches_torch(normalize, layers):
    torch = torch_or_skip()
    nn = torch.nn
    horizon, channels, hidden = 4, 2, 8

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(channels, hidden, layers, batch_first=True)
            self.head = nn.Linear(hidden, horizon * channels)

        def forward(self, x):
            x, mean, std = _torch_scale(torch, x, normalize)
            out, _ = self.lstm(x)
            return _torch_unscale(self.head(out[:, -1]), horizon, channels, mean, std)

    model = LSTMForecaster(channels, hidden, horizon, num_layers=layers, normalize=normalize)
    twin = Twin()
    copy_state(twin, model)
    x = (np.random.default_rng(0).standard_normal((3, 12, channels)) * 2 + 5).astype(np.float32)
    out = compare_modules(model, twin, x, grad_atol=2e-5)
    assert out.shape == (3, horizon, channels)


def test_transformer_forecaster_matches_torch():
    torch = torch_or_skip()
    nn = torch.nn
    L, horizon, patch, d = 16, 3, 4, 8

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(patch, d)
            self.pos = nn.Module()
            self.pos.weight = nn.Parameter(torch.zeros(L // patch, d))
            layer = nn.TransformerEncoderLayer(d, 2, 16, 0.0, batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(d), enable_nested_tensor=False)
            self.head = nn.Linear(L // patch * d, horizon)

        def forward(self, x):
            x, mean, std = _torch_scale(torch, x, True)
            h = self.encoder(self.embed(x.reshape(x.shape[0], L // patch, patch)) + self.pos.weight)
            return _torch_unscale(self.head(h.reshape(x.shape[0], -1)), horizon, 1, mean, std)

    model = TransformerForecaster(1, L, horizon, patch_len=patch, d_model=d, nhead=2, num_layers=2,
                                  dim_feedforward=16)
    twin = Twin()
    copy_state(twin, model)
    x = np.random.default_rng(1).standard_normal((3, L, 1)).astype(np.float32)
    compare_modules(model, twin, x, rtol=2e-4, atol=2e-5)


def test_seasonal_naive_by_hand():
    x = np.arange(10, dtype=np.float32)[None, :, None]          # 0 .. 9
    # season 4: the last season is 6, 7, 8, 9, repeated
    assert seasonal_naive(x, 6, 4)[0, :, 0].tolist() == [6, 7, 8, 9, 6, 7]
    assert seasonal_naive(x[0], 2, 1)[:, 0].tolist() == [9, 9]
    assert seasonal_naive(somanet.tensor(x), 3, 10)[0, :, 0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="season must be an int in"):
        seasonal_naive(x, 3, 11)


def test_forecaster_errors():
    with pytest.raises(ValueError, match=r"expected input of shape \(B, L, 1\)"):
        LSTMForecaster(1, 4, 2)(somanet.randn(2, 5, 3))
    with pytest.raises(ValueError, match="must be a multiple of patch_len"):
        TransformerForecaster(1, 10, 2, patch_len=4)
    with pytest.raises(ValueError, match="output_size .* must equal input_size"):
        LSTMForecaster(2, 4, 2, output_size=1)


def test_sines_forecast_beats_the_baselines(tmp_path, monkeypatch, one_thread):
    """A short run of the recipe on a smaller problem (1,200 steps with a daily cycle, 12 steps from 48, ten
    epochs of 13 batches): the LSTM's test MAE must be at least 10 % below the seasonal-naive forecast (one
    day earlier) and half the window mean's."""
    from somanet.cli.main import main
    monkeypatch.chdir(tmp_path)
    code = main(["train", "sines-forecast", "--epochs", "10", "--set", "data.n_steps=1200", "--set",
                 "data.periods=[24]", "--set", "data.input_len=48", "--set", "data.horizon=12", "--set",
                 "model.hidden_size=32", "--lr", "0.01", "--out", "run", "--no-plots"])
    assert code == 0
    with open(os.path.join("run", "forecast.json")) as f:
        r = json.load(f)
    assert r["windows"] == 20
    assert r["model_mae"] < 0.9 * r["seasonal_naive_24_mae"], r
    assert r["model_mae"] < 0.5 * r["window_mean_mae"], r
    assert r["model_rmse"] < r["seasonal_naive_24_rmse"], r
    assert os.path.getsize(os.path.join("run", "forecast.png")) > 5000
