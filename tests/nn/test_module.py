"""The module system: registration, traversal, modes, state_dict round trips, hooks, containers and repr,
checked against PyTorch's behaviour on the same structures."""
from collections import OrderedDict

import numpy as np
import pytest

import somanet
import somanet.nn as nn
from reference import compare_modules, copy_state, torch_or_skip

torch = torch_or_skip()
tnn = torch.nn


def _build(m):
    """The same small network in either framework (``m`` is ``somanet.nn`` or ``torch.nn``)."""
    return m.Sequential(OrderedDict([
        ("features", m.Sequential(m.Linear(4, 8), m.BatchNorm1d(8), m.ReLU())),
        ("drop", m.Dropout(0.1)),
        ("heads", m.ModuleList([m.Linear(8, 3), m.Linear(8, 2, bias=False)])),
        ("extra", m.ModuleDict({"norm": m.LayerNorm(3), "act": m.Tanh()})),
    ]))


def test_traversal_names_match_torch():
    s, t = _build(nn), _build(tnn)
    assert [n for n, _ in s.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in s.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in s.named_modules()] == [n for n, _ in t.named_modules()]
    assert [n for n, _ in s.named_children()] == [n for n, _ in t.named_children()]
    assert [type(m).__name__ for m in s.modules()] == [type(m).__name__ for m in t.modules()]
    assert [type(m).__name__ for m in s.children()] == [type(m).__name__ for m in t.children()]
    assert len(list(s.parameters())) == len(list(t.parameters()))
    assert [n for n, _ in s.features.named_parameters(prefix="f")] == [n for n, _ in t.features.named_parameters(prefix="f")]
    assert [n for n, _ in s.named_parameters(recurse=False)] == []
    assert list(s.state_dict()) == list(t.state_dict())


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(3, 3)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(model.parameters())) == 2
    assert [n for n, _ in model.named_modules()] == ["", "0", "1"]


def test_train_eval_propagate_to_every_submodule():
    model = _build(nn)
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model.heads.train(False)
    assert not model.heads[0].training and model.features.training
    with pytest.raises(ValueError, match="bool"):
        model.train("yes")


def test_zero_grad_sets_to_none_or_zeroes():
    model = nn.Linear(3, 2)
    model(somanet.randn(4, 3)).sum().backward()
    grad = model.weight.grad
    model.zero_grad(set_to_none=False)
    assert model.weight.grad is grad and not grad.array.any()
    model(somanet.randn(4, 3)).sum().backward()
    model.zero_grad()
    assert model.weight.grad is None and model.bias.grad is None


def test_apply_visits_children_first_then_self():
    model = _build(nn)
    seen = []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen[-1] == "Sequential" and seen[0] == "Linear"
    assert len(seen) == len(list(model.modules()))

    def fill(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)

    model.apply(fill)
    assert np.all(model.heads[1].weight.array == 0.5)


def test_to_casts_floating_parameters_and_buffers_only():
    model = _build(nn)
    model.to(somanet.float64)
    assert all(p.dtype == np.float64 for p in model.parameters())
    bn = model.features[1]
    assert bn.running_mean.dtype == np.float64 and bn.num_batches_tracked.dtype == np.int64
    out = model.features(somanet.tensor(np.ones((2, 4))))
    assert out.dtype == np.float64
    model.float()
    assert all(p.dtype == np.float32 for p in model.parameters())
    assert model.to("cpu") is model
    with pytest.raises(RuntimeError, match="cuda"):
        model.to("cuda")


def test_state_dict_round_trip_with_arrays_and_tensors():
    s, t = _build(nn), _build(tnn)
    copy_state(t, s)
    for key, value in t.state_dict().items():
        np.testing.assert_array_equal(s.state_dict()[key].array, value.numpy(), err_msg=key)
    other = _build(nn)
    result = other.load_state_dict(s.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for key, value in s.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[key].array, value.array)
    # Values are copied, not shared, and parameters keep their array (optimizers hold it).
    array = other.features[0].weight.array
    s.features[0].weight.array[...] = 7
    other.load_state_dict({k: v.array for k, v in s.state_dict().items()})
    assert other.features[0].weight.array is array and np.all(array == 7)


def test_state_dict_values_share_memory_and_are_detached():
    lin = nn.Linear(2, 2)
    sd = lin.state_dict()
    assert sd["weight"].array is lin.weight.array and not sd["weight"].requires_grad
    assert lin.state_dict(keep_vars=True)["weight"] is lin.weight


def test_load_state_dict_reports_missing_and_unexpected_keys():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    state = {k: v.array.copy() for k, v in model.state_dict().items()}
    del state["1.running_var"]
    state["2.weight"] = np.zeros(3, dtype=np.float32)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "1.running_var"') as info:
        model.load_state_dict(state)
    assert 'Unexpected key(s) in state_dict: "2.weight"' in str(info.value)
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["1.running_var"] and result.unexpected_keys == ["2.weight"]
    missing, unexpected = result
    assert missing == ["1.running_var"]


def test_load_state_dict_shape_mismatch_names_the_key():
    model = nn.Sequential(nn.Linear(2, 3))
    state = {"0.weight": np.zeros((4, 2), dtype=np.float32), "0.bias": np.zeros(3, dtype=np.float32)}
    with pytest.raises(RuntimeError, match=r"size mismatch for 0.weight: copying a param with shape \(4, 2\).*\(3, 2\)"):
        model.load_state_dict(state)


def test_non_persistent_buffers_are_not_saved():
    class WithBuffers(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("kept", somanet.zeros(2))
            self.register_buffer("scratch", somanet.ones(2), persistent=False)

    s = WithBuffers()
    assert [n for n, _ in s.named_buffers()] == ["kept", "scratch"]
    assert list(s.state_dict()) == ["kept"]
    t = tnn.Module()
    t.register_buffer("kept", torch.zeros(2))
    t.register_buffer("scratch", torch.ones(2), persistent=False)
    assert list(s.state_dict()) == list(t.state_dict())
    s.load_state_dict({"kept": np.ones(2, dtype=np.float32)})
    with pytest.raises(TypeError, match="Tensor or None"):
        s.register_buffer("bad", [1, 2])


def test_setattr_registers_parameters_modules_and_rejects_wrong_types():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(somanet.ones(3))
            self.child = nn.Linear(3, 1)
            self.plain = somanet.ones(2)

    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["w", "child.weight", "child.bias"]
    assert "plain" not in dict(net.named_buffers())
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'w'"):
        net.w = somanet.ones(3)
    net.w = None
    assert [n for n, _ in net.named_parameters()] == ["child.weight", "child.bias"]
    with pytest.raises(TypeError, match="child module 'child'"):
        net.child = 3
    net.child = nn.Linear(3, 2)
    assert net.child.out_features == 2
    del net.child
    assert [n for n, _ in net.named_parameters()] == []
    with pytest.raises(AttributeError, match="before Module.__init__"):
        class Bad(nn.Module):
            def __init__(self):
                self.lin = nn.Linear(1, 1)

        Bad()
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        net.nothing


def test_forward_hooks_and_pre_hooks():
    lin = nn.Linear(3, 2)
    calls = []

    def pre(module, args):
        calls.append("pre")
        return (args[0] * 2,)

    def post(module, args, output):
        calls.append("post")
        return output + 1

    h1 = lin.register_forward_pre_hook(pre)
    h2 = lin.register_forward_hook(post)
    x = somanet.randn(4, 3)
    with somanet.no_grad():
        plain = nn.functional.linear(x * 2, lin.weight, lin.bias) + 1
    np.testing.assert_allclose(lin(x).array, plain.array, rtol=1e-6)
    assert calls == ["pre", "post"]
    h1.remove()
    h2.remove()
    with somanet.no_grad():
        np.testing.assert_allclose(lin(x).array, nn.functional.linear(x, lin.weight, lin.bias).array, rtol=1e-6)
    assert calls == ["pre", "post"]
    seen = []
    lin.register_forward_hook(lambda m, a, kw, out: seen.append(sorted(kw)), with_kwargs=True)
    lin(input=x)
    assert seen == [["input"]]


def test_repr_tree_matches_torch():
    s, t = _build(nn), _build(tnn)
    assert repr(s) == repr(t)
    small_s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 1), nn.Sigmoid()))
    small_t = tnn.Sequential(tnn.Linear(2, 3), tnn.ReLU(), tnn.Sequential(tnn.Linear(3, 1), tnn.Sigmoid()))
    assert repr(small_s) == repr(small_t)


def test_sequential_indexing_slicing_len_append():
    layers = [nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and seq[0] is layers[0] and seq[-1] is layers[2]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2 and sub[0] is layers[1]
    assert list(seq) == layers
    with pytest.raises(IndexError, match="index 3 is out of range for 3 modules"):
        seq[3]
    seq.append(nn.Sigmoid())
    assert len(seq) == 4 and [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]
    del seq[1]
    assert [type(m).__name__ for m in seq] == ["Linear", "Linear", "Sigmoid"]
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2"]
    seq[2] = nn.Tanh()
    assert isinstance(seq[2], nn.Tanh)
    named = nn.Sequential(OrderedDict([("a", nn.Linear(2, 2)), ("b", nn.ReLU())]))
    assert [n for n, _ in named.named_children()] == ["a", "b"] and named.a is named[0]


def test_sequential_forward_matches_torch():
    t = tnn.Sequential(tnn.Linear(4, 5), tnn.Tanh(), tnn.Linear(5, 2))
    s = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))
    copy_state(t, s)
    compare_modules(s, t, np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32))


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml.append(nn.ReLU()).extend([nn.Tanh(), nn.Sigmoid()])
    assert len(ml) == 4 and isinstance(ml[-1], nn.Sigmoid) and isinstance(ml[1:3], nn.ModuleList)
    assert [type(m).__name__ for m in ml] == ["Linear", "ReLU", "Tanh", "Sigmoid"]
    ml.insert(1, nn.Identity())
    assert isinstance(ml[1], nn.Identity) and len(ml) == 5
    assert len(list(ml.parameters())) == 2
    with pytest.raises(IndexError):
        ml[10]
    del ml[0]
    assert [n for n, _ in ml.named_children()] == ["0", "1", "2", "3"] and isinstance(ml[0], nn.Identity)
    del ml[1:3]
    assert [type(m).__name__ for m in ml] == ["Identity", "Sigmoid"]
    md = nn.ModuleDict({"a": nn.Linear(1, 2)})
    md["b"] = nn.ReLU()
    md.update({"c": nn.Tanh()})
    assert list(md.keys()) == ["a", "b", "c"] and "b" in md and len(md) == 3
    assert isinstance(md.pop("b"), nn.ReLU) and list(md) == ["a", "c"]
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias"]
    t = tnn.ModuleDict({"a": tnn.Linear(1, 2), "c": tnn.Tanh()})
    assert repr(md) == repr(t)


def test_parameter_list_and_dict_register_parameters():
    pl = nn.ParameterList([nn.Parameter(somanet.ones(2)), somanet.zeros(3)])
    assert len(pl) == 2 and all(isinstance(p, nn.Parameter) for p in pl)
    pd = nn.ParameterDict({"w": somanet.ones(2)})
    assert [n for n, _ in pd.named_parameters()] == ["w"]


def test_parameter_is_a_leaf_that_requires_grad():
    p = nn.Parameter(somanet.ones(2, 2))
    assert p.requires_grad and p.is_leaf and p.dtype == np.float32
    frozen = nn.Parameter(somanet.ones(2), requires_grad=False)
    assert not frozen.requires_grad
    model = nn.Linear(2, 2).requires_grad_(False)
    assert not any(q.requires_grad for q in model.parameters())


def test_reassigning_a_child_or_parameter_keeps_its_place():
    seq = somanet.nn.Sequential(somanet.nn.Linear(2, 3), somanet.nn.ReLU(), somanet.nn.Linear(3, 1))
    first = somanet.nn.Linear(2, 3)
    seq[0] = first
    assert list(seq._modules) == ["0", "1", "2"] and next(iter(seq)) is first
    lin = somanet.nn.Linear(2, 2)
    lin.weight = somanet.nn.Parameter(somanet.ones(2, 2))
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
    lin.register_parameter("weight", somanet.nn.Parameter(somanet.zeros(2, 2)))
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
