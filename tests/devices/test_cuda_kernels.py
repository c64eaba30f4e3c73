"""The fused CUDA kernels (somanet/backends/cuda_kernels.py) without a GPU: the choosers pick them for the
arrays of the registered module only, and their sources compile with nvcc where it is installed. Their
results are compared with the reference ops on a GPU in tests/gpu/test_cuda_kernels.py."""
import re
import shutil
import subprocess
import types

import numpy as np
import pytest

from somanet.backends import cuda_kernels
from somanet.kernels import _select


class FakeArray:
    """Stands for ``cupy.ndarray`` in the choosers (they look at the type, dtype and shape only)."""

    def __init__(self, shape, dtype=np.float32):
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.size = int(np.prod(shape))
        self.ndim = len(shape)
        self.flags = types.SimpleNamespace(c_contiguous=True)


@pytest.fixture
def fake_cupy():
    module = types.SimpleNamespace(__name__="fakecupy", ndarray=FakeArray)
    cuda_kernels.install(module)
    try:
        yield module
    finally:
        cuda_kernels.uninstall()


def _adam_group(amsgrad=False):
    return {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": amsgrad,
            "maximize": False, "foreach": None}


def test_the_choosers_pick_the_cuda_kernels_for_that_modules_arrays_only(fake_cupy):
    shape = (64, 128)
    state = {"exp_avg": FakeArray(shape), "exp_avg_sq": FakeArray(shape)}
    assert _select.choose("adam", _adam_group(), FakeArray(shape), FakeArray(shape), state) == "cuda"
    assert _select.implementation("adam", "cuda") is cuda_kernels.adam_update
    # AMSGrad without its buffer yet, or a float16 parameter, is left to the generic code.
    assert _select.choose("adam", _adam_group(True), FakeArray(shape), FakeArray(shape), state) != "cuda"
    half = {k: FakeArray(shape, np.float16) for k in state}
    assert _select.choose("adam", _adam_group(), FakeArray(shape, np.float16), FakeArray(shape, np.float16),
                          half) != "cuda"
    host = np.zeros(shape, np.float32)
    host_state = {"exp_avg": np.zeros_like(host), "exp_avg_sq": np.zeros_like(host)}
    assert _select.choose("adam", _adam_group(), host, host.copy(), host_state) in ("numba", "reference")
    assert _select.choose("gelu", FakeArray((4096,))) == "cuda"
    assert _select.implementation("gelu", "cuda") is cuda_kernels.Gelu
    assert _select.choose("gelu", np.zeros(4096, np.float32)) != "cuda"
    # Forcing the CUDA kernel never sends it host arrays.
    with _select.kernel("adam", "cuda"):
        assert _select.choose("adam", _adam_group(), host, host.copy(), host_state) != "cuda"


def test_uninstall_restores_the_choosers(fake_cupy):
    assert "cuda" in _select.kernel_names("adam")
    cuda_kernels.uninstall()
    assert "cuda" not in _select.kernel_names("adam") and "cuda" not in _select.kernel_names("gelu")
    assert _select.choose("gelu", FakeArray((4096,))) != "cuda"
    cuda_kernels.install(fake_cupy)
    cuda_kernels.install(fake_cupy)  # twice: no double wrapping
    assert _select.kernel_names("adam").count("cuda") == 1


_C_TYPES = {"T": "T", "bool": "bool", "int32": "int"}


def _device_function(name, ins, outs, body):
    """A templated CUDA device function with the kernel's parameters (inputs by value, outputs by
    reference, as CuPy's ElementwiseKernel binds them) and its body."""
    params = [f"const {_C_TYPES[t]} {n}" for t, n in (p.split() for p in ins.split(", "))]
    params += [f"{_C_TYPES[t]}& {n}" for t, n in (p.split() for p in outs.split(", "))]
    return f"template <typename T>\n__device__ void {name}({', '.join(params)}) {{\n{body}\n}}\n"


def test_kernel_sources_compile_with_nvcc(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc (the CUDA toolkit) is not installed")
    variants = [("adam", False), ("adam", True)] + [("gelu", (a, d)) for a in ("none", "tanh") for d in (False, True)]
    source, calls = [], []
    for i, (name, variant) in enumerate(variants):
        fn = f"k{i}"
        ins, outs, body = cuda_kernels.operation(name, variant)
        source.append(_device_function(fn, ins, outs, body))
        for t in ("float", "double"):
            n_in, n_out = len(ins.split(", ")), len(outs.split(", "))
            args = []
            for p in ins.split(", "):
                kind = p.split()[0]
                args.append({"T": f"({t})0.5", "bool": "true", "int32": "1"}[kind])
            args += [f"o{t[0]}[{j}]" for j in range(n_out)]
            calls.append(f"    {{ {t} o{t[0]}[{n_out}] = {{0}}; {fn}<{t}>({', '.join(args)}); "
                         f"out_{t}[threadIdx.x] += o{t[0]}[0]; }}")
            assert n_in >= 1
    source.append("__global__ void instantiate(float* out_float, double* out_double) {\n" + "\n".join(calls) + "\n}\n")
    path = tmp_path / "kernels.cu"
    path.write_text("\n".join(source))
    done = subprocess.run([nvcc, "--ptx", "-o", str(tmp_path / "kernels.ptx"), str(path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr + "\n" + path.read_text()
    ptx = (tmp_path / "kernels.ptx").read_text()
    assert re.search(r"\.entry\s+\S*instantiate", ptx)
