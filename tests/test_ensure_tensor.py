"""One coercion of op arguments (``ops._util.ensure_tensor``): what every op family accepts and the error
it gives for anything else, naming the op."""
import numpy as np
import pytest

import somanet
import somanet.nn.functional as F
from reference import assert_close, torch_or_skip
from somanet.ops._util import ensure_tensor


def test_tensors_pass_through_and_arrays_are_wrapped_without_copy():
    t = somanet.ones(2)
    assert ensure_tensor(t) is t
    arr = np.arange(3, dtype=np.float64)
    assert ensure_tensor(arr).array is arr
    assert ensure_tensor([1.0, 2.0]).dtype == somanet.float32  # Python floats take the default dtype
    assert ensure_tensor([1, 2]).dtype == somanet.int64


@pytest.mark.parametrize("call, op", [
    (lambda bad: somanet.sum(bad), "sum"),
    (lambda bad: F.mse_loss(somanet.ones(2), bad), "mse_loss"),
    (lambda bad: F.hardsigmoid(bad), "hardsigmoid"),
])
def test_other_objects_are_refused_naming_the_op(call, op):
    with pytest.raises(TypeError, match=rf"{op}.*must be a Tensor.*got (str|dict)"):
        call({"not": "a tensor"} if op == "mse_loss" else "abc")


def test_every_family_refuses_non_numeric_input_with_a_type_error():
    for call in (somanet.nansum, somanet.median, lambda x: somanet.diag(x), lambda x: somanet.hsplit(x, 1)):
        with pytest.raises(TypeError, match=r"must be a Tensor \(or an array, a number or a sequence of numbers\), "
                                            r"got str"):
            call("abc")


def test_sequences_work_where_tensors_do():
    torch = torch_or_skip()
    data = [[1.0, -2.0], [3.0, 4.5]]
    assert_close(somanet.nansum(data).numpy(), torch.nansum(torch.tensor(data)).numpy())
    assert_close(somanet.median(data).numpy(), torch.median(torch.tensor(data)).numpy())
    assert_close(F.hardsigmoid(somanet.tensor(data)).numpy(), torch.nn.functional.hardsigmoid(torch.tensor(data)).numpy())
