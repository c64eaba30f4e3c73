"""Result dtypes of ops that combine dtypes, against PyTorch's type promotion.

Every pair of operands from bool, uint8, int8, int16, int32, int64, float16, float32 and float64, each as
a tensor with dimensions or a 0-d tensor, plus Python bool/int/float scalars on either side, goes through
the arithmetic operators, comparisons, ``where`` and ``maximum``: the result must have PyTorch's dtype
and values, and where PyTorch refuses the combination (bool subtraction, integer division of bools)
somanet must raise too.
"""
import operator

import numpy as np
import pytest

import somanet
from reference import torch_or_skip

torch = torch_or_skip()

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]


def _values(dtype, divisor=False):
    """Three values of ``dtype``: mixed signs where the dtype has them, no zero in a divisor."""
    if dtype == "bool":
        return [True, True, True] if divisor else [True, False, True]
    if dtype == "uint8":
        return [3, 7, 200]
    if dtype.startswith("int"):
        return [3, -7, 2] if divisor else [5, -7, 100]
    return [1.5, -2.25, 4.0] if divisor else [3.5, -7.25, 0.5]


def _exponents(dtype):
    # Small non-negative integer exponents (PyTorch and NumPy agree on integer overflow, but not every
    # library computes float16 powers the same way for large exponents).
    if dtype == "bool":
        return [True, False, True]
    if dtype.startswith(("int", "uint")):
        return [2, 0, 3]
    return [2.0, 0.5, 3.0]


def _operand(kind, dtype, values):
    """(somanet operand, torch operand) for a tensor with dimensions ('dim') or a 0-d tensor ('0d')."""
    arr = np.asarray(values if kind == "dim" else values[1], dtype=dtype)
    return somanet.from_numpy(arr.copy()), torch.from_numpy(arr.copy())


TENSOR_KINDS = [(kind, dtype) for kind in ("dim", "0d") for dtype in DTYPES]
SCALARS = [True, 2, -3, 300, 1.5]


def _run(fn, *args):
    try:
        return fn(*args), None
    except Exception as exc:  # noqa: BLE001 - the kind of failure is compared below
        return None, exc


def _check(failures, label, s_fn, t_fn, s_args, t_args):
    t_out, t_exc = _run(t_fn, *t_args)
    s_out, s_exc = _run(s_fn, *s_args)
    if t_exc is not None:
        if s_exc is None:
            failures.append(f"{label}: PyTorch raises {type(t_exc).__name__} ({t_exc}), somanet returns "
                            f"{s_out.dtype}")
        elif not isinstance(s_exc, RuntimeError):
            failures.append(f"{label}: PyTorch raises {type(t_exc).__name__}, somanet {type(s_exc).__name__}: "
                            f"{s_exc}")
        return
    if s_exc is not None:
        failures.append(f"{label}: somanet raises {type(s_exc).__name__}: {s_exc}")
        return
    want = t_out.numpy()
    got = s_out.array
    if got.dtype != want.dtype or got.shape != want.shape:
        failures.append(f"{label}: somanet {got.dtype}{got.shape}, PyTorch {want.dtype}{want.shape}")
        return
    if want.dtype.kind == "f":
        # float16 results may differ by the rounding of an intermediate; the dtype is the point here.
        tol = 2e-3 if want.dtype == np.float16 else 1e-6
        ok = np.allclose(got, want, rtol=tol, atol=tol, equal_nan=True)
    else:
        ok = np.array_equal(got, want)
    if not ok:
        failures.append(f"{label}: values {got.tolist()} != PyTorch {want.tolist()}")


BINARY = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
    "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow, "eq": operator.eq,
    "lt": operator.lt, "ge": operator.ge,
}


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_operator_dtypes_match_torch(name):
    op = BINARY[name]
    rhs_values = _exponents if name == "pow" else (lambda d: _values(d, divisor=True))
    failures = []
    for lk, ld in TENSOR_KINDS:
        sl, tl = _operand(lk, ld, _values(ld))
        for rk, rd in TENSOR_KINDS:
            sr, tr = _operand(rk, rd, rhs_values(rd))
            _check(failures, f"{lk} {ld} {name} {rk} {rd}", op, op, (sl, sr), (tl, tr))
        for scalar in SCALARS:
            if name == "pow" and (scalar is True or isinstance(scalar, int) and scalar < 0):
                continue
            _check(failures, f"{lk} {ld} {name} {scalar!r}", op, op, (sl, scalar), (tl, scalar))
            if name != "pow":
                _check(failures, f"{scalar!r} {name} {lk} {ld}", op, op, (scalar, sl), (scalar, tl))
    assert not failures, f"{len(failures)} mismatches:\n" + "\n".join(failures[:40])


def test_where_and_maximum_dtypes_match_torch():
    failures = []
    cond = np.array([True, False, True])
    for lk, ld in TENSOR_KINDS:
        sl, tl = _operand(lk, ld, _values(ld))
        for rk, rd in TENSOR_KINDS:
            sr, tr = _operand(rk, rd, _values(rd, divisor=True))
            _check(failures, f"maximum({lk} {ld}, {rk} {rd})", somanet.maximum, torch.maximum, (sl, sr), (tl, tr))
            _check(failures, f"minimum({lk} {ld}, {rk} {rd})", somanet.minimum, torch.minimum, (sl, sr), (tl, tr))
            _check(failures, f"where(c, {lk} {ld}, {rk} {rd})", somanet.where, torch.where,
                   (somanet.tensor(cond), sl, sr), (torch.tensor(cond), tl, tr))
        for scalar in SCALARS:
            _check(failures, f"where(c, {lk} {ld}, {scalar!r})", somanet.where, torch.where,
                   (somanet.tensor(cond), sl, scalar), (torch.tensor(cond), tl, scalar))
            _check(failures, f"where(c, {scalar!r}, {lk} {ld})", somanet.where, torch.where,
                   (somanet.tensor(cond), scalar, sl), (torch.tensor(cond), scalar, tl))
    for x, y in ((2, 5), (2.0, 5), (True, 3), (True, False)):
        _check(failures, f"where(c, {x!r}, {y!r})", somanet.where, torch.where,
               (somanet.tensor(cond), x, y), (torch.tensor(cond), x, y))
    assert not failures, f"{len(failures)} mismatches:\n" + "\n".join(failures[:40])


def test_zero_dim_tensors_do_not_widen_dimensioned_ones():
    i32 = somanet.tensor([1, 2], dtype=somanet.int32)
    assert (i32 + somanet.tensor(1)).dtype == np.int32
    assert (i32 * somanet.tensor(2, dtype=somanet.int64)).dtype == np.int32
    # ... unless they bring a higher category.
    assert (i32 + somanet.tensor(1.5, dtype=somanet.float64)).dtype == np.float64
    assert (i32 + 1.5).dtype == np.float32
    h = somanet.ones(2, dtype=somanet.float16)
    assert (h + somanet.tensor(1.0, dtype=somanet.float64)).dtype == np.float16
    assert (somanet.tensor(1, dtype=somanet.int32) + somanet.tensor(1)).dtype == np.int64  # both 0-d


def test_python_ints_wrap_into_the_tensor_dtype_like_torch():
    u = somanet.tensor([44, 1], dtype=somanet.uint8)
    tu = torch.tensor([44, 1], dtype=torch.uint8)
    for fn in (lambda x: x + 300, lambda x: x - 1, lambda x: x * 300, lambda x: x == 300, lambda x: x < 300,
               lambda x: 300 - x, lambda x: x.fmod(300)):
        got, want = fn(u), fn(tu)
        assert got.dtype == want.numpy().dtype
        np.testing.assert_array_equal(got.array, want.numpy())
    assert (somanet.tensor([1], dtype=somanet.uint8) + 300).tolist() == [45]
    assert (somanet.tensor([1, 2], dtype=somanet.int32) + 2 ** 40).tolist() == [1, 2]
    with pytest.raises(RuntimeError, match="where.*300.*uint8"):
        somanet.where(somanet.tensor([True]), somanet.tensor([1], dtype=somanet.uint8), 300)


def test_bool_arithmetic_refusals_match_torch():
    b = somanet.tensor([True, False])
    with pytest.raises(RuntimeError, match="sub"):
        b - b
    with pytest.raises(RuntimeError, match="sub"):
        somanet.ones(2) - True
    with pytest.raises(RuntimeError, match="sub"):
        1 - b
    with pytest.raises(RuntimeError, match="neg"):
        -b
    for fn in (lambda: b // b, lambda: b % b, lambda: somanet.fmod(b, b), lambda: b ** b,
               lambda: somanet.div(b, b, rounding_mode="trunc")):
        with pytest.raises(NotImplementedError, match="bool"):
            fn()
    assert (b + b).dtype == np.bool_ and (b * b).dtype == np.bool_ and (b / b).dtype == np.float32
    assert (b ** 2).dtype == np.int64 and (b // 2).dtype == np.int64


def test_add_alpha_and_integer_powers_follow_torch():
    i = somanet.tensor([1, 2], dtype=somanet.int32)
    assert somanet.add(i, i, alpha=2).tolist() == [3, 6] and somanet.add(i, i, alpha=2).dtype == np.int32
    assert somanet.sub(i, 1, alpha=3).tolist() == [-2, -1]
    with pytest.raises(RuntimeError, match="alpha"):
        somanet.add(i, i, alpha=2.5)
    with pytest.raises(RuntimeError, match="negative integer powers"):
        i ** -1
    base = torch.tensor([2, 1, -1, -2, 0, 3])
    expo = torch.tensor([-1, -1, -1, -3, -1, 2])
    got = somanet.tensor(base.numpy()) ** somanet.tensor(expo.numpy())
    np.testing.assert_array_equal(got.array, (base ** expo).numpy())
    assert (2 ** i).dtype == np.int32 and (2.5 ** i).dtype == np.float32 and (i ** 2.5).dtype == np.float32


def test_lerp_dtypes_follow_torch():
    a, b = somanet.ones(2), somanet.zeros(2)
    assert somanet.lerp(a, b, somanet.tensor(0.5, dtype=somanet.float64)).dtype == np.float32
    assert somanet.lerp(a, b, 0.25).tolist() == [0.75, 0.75]
    with pytest.raises(RuntimeError, match="end.*float32"):
        somanet.lerp(a, b.double(), 0.5)
    with pytest.raises(RuntimeError, match="weight.*float32"):
        somanet.lerp(a, b, somanet.ones(2, dtype=somanet.float64))
    with pytest.raises(NotImplementedError, match="lerp"):
        somanet.lerp(somanet.tensor([1, 2]), somanet.tensor([3, 4]), 0.5)


def test_clamp_with_tensor_bounds_promotes_like_torch():
    i = somanet.tensor([1, 5], dtype=somanet.int32)
    ti = torch.tensor([1, 5], dtype=torch.int32)
    cases = [
        (lambda x, m: x.clamp(min=m), somanet.tensor(2), torch.tensor(2)),
        (lambda x, m: x.clamp(min=m), somanet.tensor(2.5), torch.tensor(2.5)),
        (lambda x, m: x.clamp(max=m), somanet.tensor([2, 3]), torch.tensor([2, 3])),
        (lambda x, m: x.clamp(min=m), 0.5, 0.5),
        (lambda x, m: x.clamp(min=m), 2, 2),
    ]
    for fn, sm, tm in cases:
        got, want = fn(i, sm), fn(ti, tm)
        assert got.dtype == want.numpy().dtype
        np.testing.assert_array_equal(got.array, want.numpy())


def test_result_type_matches_torch_result_type():
    from somanet.backend import result_type

    failures = []
    operands = [(kind, d) for kind, d in TENSOR_KINDS] + [("py", s) for s in (True, 2, 1.5)]
    for lk, ld in operands:
        for rk, rd in operands:
            if lk == "py" and rk == "py":
                continue
            s_args, t_args = [], []
            for kind, d in ((lk, ld), (rk, rd)):
                if kind == "py":
                    s_args.append(d)
                    t_args.append(d)
                else:
                    arr = np.zeros((2,) if kind == "dim" else (), dtype=d)
                    s_args.append(arr)
                    t_args.append(torch.from_numpy(arr))
            want = torch.empty(0, dtype=torch.result_type(*t_args)).numpy().dtype
            got = result_type(*s_args)
            if got != want:
                failures.append(f"{lk} {ld}, {rk} {rd}: {got} != {want}")
    assert not failures, "\n".join(failures)
