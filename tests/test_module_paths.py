"""PyTorch's module paths under somanet: ``nn.modules.<file>``, ``nn.parallel.DataParallel``, ``nn.utils``
helpers and ``utils.data.<file>``."""
import importlib

import numpy as np
import pytest

import somanet
import somanet.nn as nn
from reference import assert_close, torch

FILES = ["rnn", "linear", "conv", "sparse", "normalization", "batchnorm", "instancenorm", "activation", "dropout",
         "pooling", "loss", "container", "module", "transformer", "flatten", "padding", "pixelshuffle", "upsampling",
         "distance"]


@pytest.mark.parametrize("name", FILES)
def test_nn_modules_file_exposes_torch_classes_somanet_has(name):
    mod = importlib.import_module(f"somanet.nn.modules.{name}")
    if torch is None:
        pytest.skip("PyTorch (CPU build) is not installed")
    tmod = importlib.import_module(f"torch.nn.modules.{name}")
    for cls in getattr(tmod, "__all__", []):
        if hasattr(nn, cls) or name == "distance":
            assert hasattr(mod, cls), f"somanet.nn.modules.{name}.{cls} is missing"
            if hasattr(nn, cls):
                assert getattr(mod, cls) is getattr(nn, cls)


def test_explicit_imports():
    from somanet.nn.modules.activation import MultiheadAttention
    from somanet.nn.modules.batchnorm import BatchNorm2d
    from somanet.nn.modules.container import Sequential
    from somanet.nn.modules.linear import Linear
    from somanet.nn.modules.module import Module
    from somanet.nn.modules.rnn import LSTM
    from somanet.nn.modules.sparse import Embedding

    assert MultiheadAttention is nn.MultiheadAttention and LSTM is nn.LSTM and Embedding is nn.Embedding
    assert BatchNorm2d is nn.BatchNorm2d and Linear is nn.Linear and Module is nn.Module
    assert Sequential is nn.Sequential


@pytest.mark.skipif(torch is None, reason="PyTorch (CPU build) is not installed")
def test_distance_layers_match_torch():
    from somanet.nn.modules.distance import CosineSimilarity, PairwiseDistance

    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal((4, 5)).astype(np.float32)
    assert_close(CosineSimilarity(dim=1)(somanet.tensor(a), somanet.tensor(b)),
                 torch.nn.CosineSimilarity(dim=1)(torch.tensor(a), torch.tensor(b)))
    assert_close(PairwiseDistance(p=1.0, keepdim=True)(somanet.tensor(a), somanet.tensor(b)),
                 torch.nn.PairwiseDistance(p=1.0, keepdim=True)(torch.tensor(a), torch.tensor(b)))
    assert "p=1.0" in repr(PairwiseDistance(p=1.0))


def test_data_parallel_is_a_pass_through_with_torch_keys():
    from somanet.nn.parallel import DataParallel, data_parallel

    inner = nn.Linear(3, 2)
    model = DataParallel(inner, device_ids=[0], output_device=0, dim=0)
    assert model.module is inner and model.device_ids == [0] and model.dim == 0
    assert list(model.state_dict()) == ["module.weight", "module.bias"]
    x = somanet.ones(4, 3)
    assert_close(model(x), inner(x))
    assert_close(data_parallel(inner, x), inner(x))
    assert [n for n, _ in model.named_parameters()] == ["module.weight", "module.bias"]
    model.load_state_dict({"module.weight": somanet.zeros(2, 3), "module.bias": somanet.ones(2)})
    assert inner(x).tolist() == [[1.0, 1.0]] * 4
    if torch is not None:
        t = torch.nn.DataParallel(torch.nn.Linear(3, 2))
        assert list(t.state_dict()) == list(model.state_dict())
    with pytest.raises(TypeError):
        DataParallel(lambda v: v)


def test_nn_utils_helpers():
    from somanet.nn.utils import (clip_grad_norm_, convert_conv2d_weight_memory_format, parameters_to_vector,
                                  skip_init, vector_to_parameters)

    m = nn.Linear(3, 2)
    vec = parameters_to_vector(m.parameters())
    assert vec.shape == (8,)
    vector_to_parameters(vec * 0 + 1, m.parameters())
    assert m.weight.tolist() == [[1.0] * 3] * 2
    m(somanet.ones(1, 3)).sum().backward()
    assert clip_grad_norm_(m.parameters(), 1.0).item() > 0
    lin = skip_init(nn.Linear, 4, 5, device="cpu")
    assert lin.weight.shape == (5, 4)
    assert convert_conv2d_weight_memory_format(m, None) is m


@pytest.mark.parametrize("path,names", [
    ("somanet.utils.data.dataloader", ["DataLoader", "get_worker_info"]),
    ("somanet.utils.data.dataset", ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split",
                                    "IterableDataset"]),
    ("somanet.utils.data.sampler", ["Sampler", "RandomSampler", "SequentialSampler", "BatchSampler",
                                    "WeightedRandomSampler", "SubsetRandomSampler"]),
    ("somanet.utils.data.distributed", ["DistributedSampler"]),
    ("somanet.utils.data._utils.collate", ["default_collate"]),
])
def test_utils_data_paths(path, names):
    mod = importlib.import_module(path)
    for name in names:
        assert hasattr(mod, name), f"{path}.{name}"
    if torch is not None and not path.endswith("collate"):
        tmod = importlib.import_module(path.replace("somanet", "torch"))
        for name in names:
            assert hasattr(tmod, name)


def test_from_imports_of_utils_data_files():
    from somanet.utils.data.dataloader import DataLoader
    from somanet.utils.data.sampler import RandomSampler

    assert DataLoader is somanet.data.DataLoader and RandomSampler is somanet.data.RandomSampler
