"""Devices, the torch-like namespace and the CPU-only answers of somanet.cuda / accelerator / backends."""
import subprocess
import sys

import numpy as np
import pytest

import somanet
from reference import torch_or_skip

# These check the answers of an install without a GPU; tests/gpu covers a machine with one.
cpu_install = pytest.mark.skipif(somanet.cuda.is_available(), reason="CUDA is available here")


def test_device_objects_parse_and_print_like_torch():
    torch = torch_or_skip()
    for args in (("cpu",), ("cuda",), ("cuda", 0), ("cuda:1",), ("cpu:0",), ("mps",), ("meta",)):
        s, t = somanet.device(*args), torch.device(*args)
        assert (s.type, s.index, str(s), repr(s)) == (t.type, t.index, str(t), repr(t))
    assert somanet.device("cpu") == "cpu" and somanet.device("cuda:0") == somanet.device("cuda", 0)
    assert len({somanet.device("cpu"), somanet.device("cpu")}) == 1
    for bad in ("gpu", "cuda:x", "cuda:-1"):
        with pytest.raises((RuntimeError, ValueError)):
            torch.device(bad)
        with pytest.raises((RuntimeError, ValueError)):
            somanet.device(bad)


@cpu_install
def test_device_aware_code_runs_on_the_cpu():
    dev = somanet.device("cuda" if somanet.cuda.is_available() else "cpu")
    model = somanet.nn.Linear(3, 2).to(dev)
    x = somanet.randn(4, 3, device=dev).to(dev)
    assert model(x).device == dev and x.device.type == "cpu" and not x.is_cuda
    assert x.to("cpu", somanet.float64).dtype == somanet.float64
    assert x.to(somanet.ones(1, dtype=somanet.float64)).dtype == somanet.float64
    assert x.cpu() is x and model.cpu() is model
    assert somanet.zeros(2, device="cpu").device == "cpu"
    assert somanet.get_default_device() == "cpu"
    g = somanet.Generator(device="cpu")
    g.manual_seed(3)
    a = somanet.rand(3, generator=g)
    g.manual_seed(3)
    np.testing.assert_array_equal(a.array, somanet.rand(3, generator=g).array)


@cpu_install
@pytest.mark.parametrize("call", [
    lambda: somanet.ones(2).cuda(), lambda: somanet.ones(2).to("cuda"), lambda: somanet.zeros(2, device="cuda:0"),
    lambda: somanet.nn.Linear(2, 2).cuda(), lambda: somanet.nn.Linear(2, 2).to("cuda"),
    lambda: somanet.tensor([1.0], device="mps"), lambda: somanet.set_default_device("cuda"),
    lambda: somanet.cuda.synchronize(),
])
def test_a_missing_device_is_a_clear_error(call):
    with pytest.raises(RuntimeError, match="not available|no GPU"):
        call()


@cpu_install
def test_cuda_accelerator_and_backend_switches_answer_for_a_cpu_install():
    assert somanet.cuda.is_available() is False and somanet.cuda.device_count() == 0
    assert somanet.cuda.is_bf16_supported() is False
    somanet.cuda.manual_seed(0)
    somanet.cuda.manual_seed_all(0)
    assert somanet.accelerator.is_available() is False and somanet.accelerator.current_accelerator() is None
    somanet.backends.cudnn.benchmark = True
    somanet.backends.cudnn.deterministic = True
    assert somanet.backends.cudnn.benchmark and not somanet.backends.mps.is_available()
    somanet.backends.cudnn.benchmark = False
    somanet.backends.cudnn.deterministic = False


def test_default_dtype_round_trip():
    assert somanet.get_default_dtype() == somanet.float32
    somanet.set_default_dtype(somanet.float64)
    try:
        assert somanet.tensor([1.5]).dtype == somanet.float64 and somanet.zeros(2).dtype == somanet.float64
    finally:
        somanet.set_default_dtype(somanet.float32)
    assert somanet.tensor([1.5]).dtype == somanet.float32
    with pytest.raises(TypeError, match="floating"):
        somanet.set_default_dtype(somanet.int64)


@cpu_install
def test_submodules_are_attributes_but_not_imported_eagerly():
    code = ("import sys, somanet; assert 'somanet.nn' not in sys.modules, 'nn imported eagerly'; "
            "import somanet as torch; assert torch.nn.Linear and torch.optim.SGD and torch.utils.data.DataLoader; "
            "assert torch.autograd.grad and torch.backends.cudnn and torch.cuda.is_available() is False; "
            "assert not hasattr(torch, 'no_such_thing')")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cuda_without_cupy_says_how_to_install_and_import_stays_light():
    code = ("import sys; sys.modules['cupy'] = None; import somanet; "
            "assert 'cupy' not in [m for m in sys.modules if sys.modules[m] is not None]; "
            "assert somanet.cuda.is_available() is False and somanet.cuda.device_count() == 0; "
            "assert 'pip install somanet[cuda]' in somanet.cuda.unavailable_reason()\n"
            "try:\n    somanet.ones(2, device='cuda')\nexcept RuntimeError as e:\n"
            "    assert 'pip install somanet[cuda]' in str(e), e\nelse:\n    raise AssertionError('no error')")
    subprocess.run([sys.executable, "-c", code], check=True)
