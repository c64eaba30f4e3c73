"""``DistributedDataParallel`` on two ranks against one process training on the combined batches."""
import numpy as np
import pytest

import somanet
from somanet import nn


@pytest.fixture(scope="module")
def results(jobs, tmp_path_factory):
    return jobs.launch_results("ddp.py", tmp_path_factory.mktemp("ddp"), "ddp")


def test_fifty_steps_match_one_process_on_the_combined_batch(jobs, results):
    ref = jobs.rank_script("ddp").reference()
    for r in range(2):
        for key, want in ref.items():
            got = results[r]["trained/module." + key]
            # float32: the all-reduce sums the two halves in another order than one big batch does.
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6, err_msg=f"rank {r} {key}")
    # The replicas stay identical, bit for bit.
    for key in ref:
        np.testing.assert_array_equal(results[0]["trained/module." + key], results[1]["trained/module." + key])


def test_reduction_starts_during_backward(results):
    # One parameter per bucket: the first all-reduce starts after the first of the step's gradient
    # contributions (the output layer's), long before backward ends.
    launch_at, total = results[0]["launch_at"], int(results[0]["contributions"])
    assert int(results[0]["buckets"]) == 6
    assert total == 8  # six parameters, the shared layer's two used twice
    assert launch_at[0] < total / 2 and list(launch_at) == sorted(launch_at)


def test_no_sync_accumulates_locally_then_reduces_everything(jobs, results):
    mod = jobs.rank_script("ddp")
    x, y = mod.data()
    loss_fn = nn.CrossEntropyLoss()
    model = mod.new_net()
    for r in range(2):
        xs, ys = x[0, r * 8:(r + 1) * 8], y[0, r * 8:(r + 1) * 8]
        for rows in (slice(0, 4), slice(4, 8), slice(0, 4)):
            (loss_fn(model(somanet.tensor(xs[rows])), somanet.tensor(ys[rows])) / 3 / 2).backward()
    for name, p in model.named_parameters():
        for r in range(2):
            np.testing.assert_allclose(results[r]["no_sync/module." + name], p.grad.array, rtol=1e-4, atol=1e-6)
    # Inside no_sync the ranks' gradients were their own.
    assert not np.allclose(results[0]["no_sync_local/module.out.weight"], results[1]["no_sync_local/module.out.weight"])


def test_unused_parameters(results):
    for r in range(2):
        np.testing.assert_allclose(results[r]["unused/extra.weight"], 1.0)  # rank 0's 2.0, averaged with nothing
        np.testing.assert_allclose(results[r]["unused/body.weight"], 3.0)   # (2 + 4) / 2
        assert bool(results[r]["unused/never_grad_is_none"])
    message = str(results[0]["unused_error"])
    assert "find_unused_parameters=True" in message and "never.weight" in message and "extra" not in message


def test_state_dict_keys_are_prefixed_and_load_into_the_plain_model(results):
    assert list(results[0]["keys"]) == ["module.inp.weight", "module.inp.bias", "module.shared.weight",
                                        "module.shared.bias", "module.out.weight", "module.out.bias"]
    assert bool(results[0]["plain_loads"])


def test_four_ranks_match_one_process_on_the_combined_batch(jobs, tmp_path):
    # Four ranks on any core count (oversubscribed here): 4 rows each, the same 16-row steps as one process.
    jobs.launch("ddp_world.py", tmp_path, n=4, timeout=240).check()
    ref = jobs.rank_script("ddp").reference()
    got = [dict(np.load(tmp_path / f"ddp_world4_rank{r}.npz")) for r in range(4)]
    for r in range(4):
        for key, want in ref.items():
            np.testing.assert_allclose(got[r][key], want, rtol=1e-4, atol=2e-6, err_msg=f"rank {r} {key}")
        for key in ref:
            np.testing.assert_array_equal(got[r][key], got[0][key])
