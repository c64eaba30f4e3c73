"""``SyncBatchNorm`` on two ranks against PyTorch's ``BatchNorm`` on the concatenated batch."""
import numpy as np
import pytest

from reference import torch_or_skip


@pytest.fixture(scope="module")
def results(jobs, tmp_path_factory):
    return jobs.launch_results("syncbn.py", tmp_path_factory.mktemp("syncbn"), "syncbn")


@pytest.mark.parametrize("case", ["4d", "2d"])
def test_matches_batch_norm_over_the_whole_batch(jobs, results, case):
    torch = torch_or_skip()
    mod = jobs.rank_script("syncbn")
    shape = mod.CASES[case]
    x, g, w, b = mod.case_data(shape)
    bn = torch.nn.BatchNorm1d(shape[1], momentum=0.3) if len(shape) == 2 else torch.nn.BatchNorm2d(shape[1],
                                                                                                  momentum=0.3)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(w))
        bn.bias.copy_(torch.from_numpy(b))
    xt = torch.from_numpy(x).requires_grad_(True)
    y = bn(xt)
    y.backward(torch.from_numpy(g))
    half = shape[0] // 2
    tol = dict(rtol=1e-4, atol=1e-5)
    for r in range(2):
        rows = slice(r * half, (r + 1) * half)
        got = results[r]
        np.testing.assert_allclose(got[f"{case}/out"], y.detach().numpy()[rows], **tol)
        np.testing.assert_allclose(got[f"{case}/dx"], xt.grad.numpy()[rows], **tol)
        np.testing.assert_allclose(got[f"{case}/running_mean"], bn.running_mean.numpy(), **tol)
        np.testing.assert_allclose(got[f"{case}/running_var"], bn.running_var.numpy(), **tol)
    # Weight and bias gradients are each rank's own part: summed over the ranks (as DDP's reduction
    # does before dividing by the world size) they are the whole batch's.
    np.testing.assert_allclose(results[0][f"{case}/dw"] + results[1][f"{case}/dw"], bn.weight.grad.numpy(), **tol)
    np.testing.assert_allclose(results[0][f"{case}/db"] + results[1][f"{case}/db"], bn.bias.grad.numpy(), **tol)
    bn.eval()
    with torch.no_grad():
        ev = bn(torch.from_numpy(x)).numpy()
    for r in range(2):
        np.testing.assert_allclose(results[r][f"{case}/eval"], ev[r * half:(r + 1) * half], **tol)


def test_convert_sync_batchnorm(results):
    assert list(results[0]["converted"]) == ["SyncBatchNorm", "SyncBatchNorm"]
    assert bool(results[0]["converted_shares"])
