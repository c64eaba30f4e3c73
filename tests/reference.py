"""The one helper that runs a computation in somanet and in PyTorch (CPU) and compares them.

``compare(fn_somanet, fn_torch, *arrays)`` builds tensors from the same NumPy arrays in both
frameworks (floating arrays require grad unless ``requires_grad`` says otherwise), runs both functions,
compares every output, then backpropagates the same random cotangent through every floating output
and compares the gradient of every input that requires grad. float32 tolerances: rtol 1e-4,
atol 1e-5 unless the caller documents a looser one. Outputs must keep their dtype.

Under ``pytest --somanet-device=standin`` (see conftest.py) the somanet side runs on that device: the
helpers that make somanet tensors (``compare``, ``lib_tensor``, ``compare_modules``, ``optimizer_pair``,
``set_grads``) put them there, and ``to_numpy`` brings results back to the host for the comparison.
"""
import contextlib

import numpy as np
import pytest

import somanet

try:
    import torch
except ImportError:  # pragma: no cover - CI installs torch
    torch = None

requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch (CPU build) is not installed")

#: The device the helpers put somanet tensors on (None: the CPU); set by ``--somanet-device``.
DEVICE = None


@contextlib.contextmanager
def device_scope():
    """Within it, somanet's creation functions make tensors on the suite's device, as inside PyTorch's
    ``with torch.device("cuda"):``: the index, target and mask tensors a test builds inside the compared
    function go where its inputs are. Nothing changes on the CPU run."""
    if DEVICE is None:
        yield
        return
    previous = somanet.get_default_device()
    somanet.set_default_device(DEVICE)
    try:
        yield
    finally:
        somanet.set_default_device(previous)


def on_device(t):
    """A somanet tensor or module moved to the suite's device (unchanged on the CPU run)."""
    return t if DEVICE is None else t.to(DEVICE)


def torch_or_skip():
    if torch is None:
        pytest.skip("PyTorch (CPU build) is not installed")
    return torch


def _flatten(out):
    if isinstance(out, (tuple, list)):
        items = []
        for o in out:
            items.extend(_flatten(o))
        return items
    return [out]


def to_numpy(t):
    """A somanet or PyTorch tensor's values as a NumPy array (None stays None)."""
    if t is None:
        return None
    if torch is not None and isinstance(t, torch.Tensor):
        return t.numpy(force=True)
    if isinstance(t, somanet.Tensor):
        t = t.array
    if type(t) in somanet.devices._array_types:
        return somanet.devices.move(t, somanet.devices.CPU)
    return np.asarray(t)


def lib_tensor(lib, a, requires_grad=True):
    """``a`` as a tensor of ``lib`` (the somanet or the torch module); somanet's on the suite's device."""
    if lib is somanet:
        return lib.tensor(a, requires_grad=requires_grad, device=DEVICE)
    return lib.tensor(a, requires_grad=requires_grad)


def assert_close(actual, expected, rtol=1e-4, atol=1e-5, what="value", check_dtype=True):
    a = to_numpy(actual)
    e = to_numpy(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != reference {e.shape}"
    if check_dtype:
        assert a.dtype == e.dtype, f"{what}: dtype {a.dtype} != reference {e.dtype}"
    if a.dtype == np.bool_ or a.dtype.kind in "iu":
        np.testing.assert_array_equal(a, e, err_msg=what)
    else:
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=what, equal_nan=True)


def compare(fn_somanet, fn_torch, *arrays, requires_grad=None, rtol=1e-4, atol=1e-5, grad_rtol=None,
            grad_atol=None, seed=0, check_dtype=True, backward=True):
    """Run both functions on the same inputs; compare outputs and input gradients.

    ``arrays`` are NumPy arrays (or Python values passed through unchanged). ``requires_grad`` is a
    list of bools, one per array; by default floating arrays require grad. Returns the somanet outputs.
    """
    th = torch_or_skip()
    if requires_grad is None:
        requires_grad = [isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in arrays]
    s_in, t_in = [], []
    for a, rg in zip(arrays, requires_grad):
        if isinstance(a, np.ndarray):
            s_in.append(somanet.tensor(a.copy(), requires_grad=rg, device=DEVICE))
            t_in.append(th.tensor(a.copy(), requires_grad=rg))
        else:
            s_in.append(a)
            t_in.append(a)
    with device_scope():
        s_out = fn_somanet(*s_in)
    t_out = fn_torch(*t_in)
    s_list, t_list = _flatten(s_out), _flatten(t_out)
    assert len(s_list) == len(t_list), f"{len(s_list)} outputs vs reference {len(t_list)}"
    for i, (so, to) in enumerate(zip(s_list, t_list)):
        assert_close(so, to, rtol, atol, what=f"output {i}", check_dtype=check_dtype)
    if not backward:
        return s_out
    rng = np.random.default_rng(seed)
    s_terms, t_terms = [], []
    for so, to in zip(s_list, t_list):
        if isinstance(to, th.Tensor) and to.requires_grad:
            assert isinstance(so, somanet.Tensor) and so.requires_grad, "reference output requires grad, somanet's does not"
            v = rng.standard_normal(tuple(to.shape)).astype(to_numpy(to).dtype)
            s_terms.append((so * somanet.tensor(v, device=so.device)).sum())
            t_terms.append((to * th.tensor(v)).sum())
    if not t_terms:
        return s_out
    s_total = s_terms[0]
    for term in s_terms[1:]:
        s_total = s_total + term
    sum(t_terms).backward()
    with device_scope():
        s_total.backward()
    gr = rtol if grad_rtol is None else grad_rtol
    ga = atol if grad_atol is None else grad_atol
    for i, (si, ti) in enumerate(zip(s_in, t_in)):
        if isinstance(ti, th.Tensor) and ti.requires_grad:
            if ti.grad is None:
                assert si.grad is None or not np.any(si.grad.array), f"input {i}: somanet has a gradient, reference has none"
                continue
            assert si.grad is not None, f"input {i}: somanet has no gradient, reference does"
            assert_close(si.grad, ti.grad, gr, ga, what=f"gradient of input {i}", check_dtype=check_dtype)
    return s_out


def copy_state(torch_module, somanet_module):
    """Load a PyTorch module's state_dict (as NumPy arrays) into the matching somanet module."""
    state = {k: v.detach().cpu().numpy().copy() for k, v in torch_module.state_dict().items()}
    return somanet_module.load_state_dict(state)


def compare_modules(s_mod, t_mod, *arrays, rtol=1e-4, atol=1e-5, grad_rtol=None, grad_atol=None,
                    requires_grad=None, seed=0, forward=None):
    """Compare a somanet module with a PyTorch one (state already copied): outputs, input gradients,
    and every parameter gradient by name. ``forward(module, *inputs)`` overrides ``module(*inputs)``."""
    th = torch_or_skip()
    for m in (s_mod,):
        on_device(m)
        m.zero_grad()
    t_mod.zero_grad()
    call = forward or (lambda m, *xs: m(*xs))
    out = compare(lambda *xs: call(s_mod, *xs), lambda *xs: call(t_mod, *xs), *arrays, rtol=rtol, atol=atol,
                  grad_rtol=grad_rtol, grad_atol=grad_atol, requires_grad=requires_grad, seed=seed)
    gr = rtol if grad_rtol is None else grad_rtol
    ga = atol if grad_atol is None else grad_atol
    s_params = dict(s_mod.named_parameters())
    for name, tp in t_mod.named_parameters():
        assert name in s_params, f"parameter {name} missing in somanet module"
        sp = s_params[name]
        if tp.grad is None:
            assert sp.grad is None or not np.any(sp.grad.array), f"{name}: somanet has a gradient, reference has none"
            continue
        assert sp.grad is not None, f"{name}: no gradient in somanet"
        assert_close(sp.grad, tp.grad, gr, ga, what=f"gradient of parameter {name}")
    return out


def optimizer_pair(name, kw, inits, foreach=None):
    """The same optimizer in somanet and PyTorch over copies of ``inits``: ``(s_params, s_opt, t_params, t_opt)``."""
    from somanet import optim

    t = torch_or_skip()
    sp = [somanet.tensor(a.copy(), requires_grad=True, device=DEVICE) for a in inits]
    tp = [t.tensor(a.copy(), requires_grad=True) for a in inits]
    return sp, getattr(optim, name)(sp, foreach=foreach, **kw), tp, getattr(t.optim, name)(tp, **kw)


def set_grads(sp, tp, grads):
    """Give both frameworks' parameters the same gradients (NumPy arrays)."""
    t = torch_or_skip()
    for s, p, g in zip(sp, tp, grads):
        s.grad = somanet.tensor(g, device=s.device)
        p.grad = t.tensor(g)


def torch_gpt(torch, vocab, block, layers, heads, d):
    """The PyTorch model ``somanet.models.GPT(vocab, block, layers, heads, d)`` computes (same state_dict names)."""
    class TorchGPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_emb = torch.nn.Embedding(vocab, d)
            self.pos_emb = torch.nn.Module()
            self.pos_emb.weight = torch.nn.Parameter(torch.zeros(block, d))
            self.blocks = torch.nn.ModuleList([
                torch.nn.TransformerEncoderLayer(d, heads, 4 * d, 0.0, activation=lambda x: torch.nn.functional.gelu(
                    x, approximate="tanh"), batch_first=True, norm_first=True) for _ in range(layers)])
            self.ln_f = torch.nn.LayerNorm(d)
            self.head = torch.nn.Linear(d, vocab, bias=False)
            self.head.weight = self.tok_emb.weight

        def forward(self, idx):
            T = idx.shape[1]
            x = self.tok_emb(idx) + self.pos_emb.weight[:T]
            mask = torch.nn.Transformer.generate_square_subsequent_mask(T)
            for blk in self.blocks:
                x = blk(x, src_mask=mask, is_causal=True)
            return self.head(self.ln_f(x))

    return TorchGPT()
