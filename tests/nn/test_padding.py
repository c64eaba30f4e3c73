"""Padding layers (zero, constant, reflection, replication, circular; 1-d, 2-d and 3-d) against PyTorch."""
import numpy as np
import pytest

import somanet
import somanet.nn as nn
from reference import compare_modules, torch_or_skip

torch = torch_or_skip()


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


INPUT = {1: (2, 3, 7), 2: (2, 3, 5, 6), 3: (1, 2, 4, 5, 6)}
PADDING = {1: [2, (1, 3)], 2: [1, (1, 2, 0, 3)], 3: [1, (1, 0, 2, 1, 0, 3)]}


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kind", ["ZeroPad", "ConstantPad", "ReflectionPad", "ReplicationPad", "CircularPad"])
def test_padding_layers_match_torch(dims, kind):
    name = f"{kind}{dims}d"
    for padding in PADDING[dims]:
        args = (padding, 1.5) if kind == "ConstantPad" else (padding,)
        s_mod, t_mod = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
        assert repr(s_mod) == repr(t_mod)
        out = compare_modules(s_mod, t_mod, _x(*INPUT[dims]))
        assert out.dtype == np.float32
        # Unbatched input (one dimension fewer) is accepted too.
        compare_modules(s_mod, t_mod, _x(*INPUT[dims][1:]))


def test_negative_constant_padding_crops_like_torch():
    s_mod, t_mod = nn.ZeroPad2d((-1, 2, 0, -2)), torch.nn.ZeroPad2d((-1, 2, 0, -2))
    compare_modules(s_mod, t_mod, _x(2, 3, 5, 6))


def test_padding_errors_name_the_layer_and_shape():
    with pytest.raises(ValueError, match=r"ReflectionPad2d.*\(N, C, H, W\).*\(5, 5\)"):
        nn.ReflectionPad2d(1)(somanet.randn(5, 5))
    with pytest.raises(ValueError, match="ZeroPad2d: padding must be an int or a tuple of 4"):
        nn.ZeroPad2d((1, 2))
    with pytest.raises(RuntimeError, match="reflect"):
        nn.ReflectionPad1d(5)(somanet.randn(1, 2, 4))
