"""nn.init on fresh layers (deterministic initialisers compared by value, random ones by their statistics)
and gradient clipping by norm and by value."""
import math

import numpy as np
import torch
import torch.nn as nn


def main():
    results = {}
    big = nn.Linear(400, 300)
    nn.init.xavier_uniform_(big.weight)
    bound = math.sqrt(6.0 / (400 + 300))
    assert big.weight.abs().max().item() <= bound
    assert abs(big.weight.std().item() - bound / math.sqrt(3)) < 0.02 * bound
    nn.init.kaiming_normal_(big.weight, mode="fan_in", nonlinearity="relu")
    assert abs(big.weight.std().item() - math.sqrt(2.0 / 400)) < 0.03 * math.sqrt(2.0 / 400)
    nn.init.zeros_(big.bias)
    nn.init.trunc_normal_(big.weight, std=0.02, a=-0.04, b=0.04)
    assert big.weight.abs().max().item() <= 0.04
    wide = nn.Linear(64, 48)
    nn.init.orthogonal_(wide.weight)
    gram = wide.weight @ wide.weight.t()
    results["orthogonal_error"] = round((gram - torch.eye(48)).abs().max().item(), 4)

    conv = nn.Conv2d(3, 3, 3)
    nn.init.dirac_(conv.weight)
    nn.init.constant_(conv.bias, 0.5)
    square = torch.empty(4, 4)
    nn.init.eye_(square)
    results["dirac_sum"] = conv.weight.sum().item()
    results["bias_sum"] = conv.bias.sum().item()
    results["eye_trace"] = square.trace().item()
    results["gains"] = [nn.init.calculate_gain("relu"), nn.init.calculate_gain("tanh"),
                        nn.init.calculate_gain("leaky_relu", 0.2), nn.init.calculate_gain("selu")]
    assert big.bias.abs().sum().item() == 0.0

    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            p.copy_(torch.from_numpy(rng.normal(0, 1.0, size=tuple(p.shape)).astype(np.float32)))
    x = torch.from_numpy(rng.normal(size=(16, 8)).astype(np.float32)) * 10
    loss = model(x).pow(2).sum()
    loss.backward()
    total = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    clipped = math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.parameters()))
    nn.utils.clip_grad_value_(model.parameters(), clip_value=0.05)
    results["norm_before"] = total.item()
    results["norm_after"] = clipped
    results["max_after_value_clip"] = max(p.grad.abs().max().item() for p in model.parameters())
    return results


if __name__ == "__main__":
    print(main())
