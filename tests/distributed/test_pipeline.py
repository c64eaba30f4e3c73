"""``somanet.distributed.pipeline.Pipe`` on two ranks: the gradients of the whole model in one process."""
import numpy as np
import pytest

import somanet


@pytest.fixture(scope="module")
def results(jobs, tmp_path_factory):
    return jobs.launch_results("pipeline.py", tmp_path_factory.mktemp("pipe"), "pipe")


@pytest.mark.parametrize("schedule,bounds", [("gpipe", [0, 3, 7]), ("1f1b", [0, 4, 7])])
def test_gradients_and_step_match_the_whole_model(jobs, results, schedule, bounds):
    mod = jobs.rank_script("pipeline")
    loss, grads, after, model = mod.reference()
    assert list(results[0][f"{schedule}/bounds"]) == bounds
    seen = set()
    for r in range(2):
        got = results[r]
        assert float(got[f"{schedule}/loss"]) == pytest.approx(loss, rel=1e-6)  # on every rank
        for key in [k for k in got if k.startswith(f"{schedule}/grad/")]:
            name = key.split("/", 2)[2]
            np.testing.assert_allclose(got[key], grads[name], rtol=1e-5, atol=1e-7, err_msg=f"{schedule} {name}")
            seen.add(name)
        for key in [k for k in got if k.startswith(f"{schedule}/after/")]:
            name = key.split("/", 2)[2]
            np.testing.assert_allclose(got[key], after[name], rtol=1e-5, atol=1e-7)
    assert seen == set(grads)  # the two stages hold the whole model between them, under its own names
    with somanet.no_grad():
        want = model(somanet.tensor(mod.data()[0])).array
    np.testing.assert_allclose(results[1][f"{schedule}/forward"], want, rtol=1e-5, atol=1e-6)


def test_partition_balances_parameters():
    from somanet.distributed.pipeline import partition
    assert partition([1, 1, 1, 1], 2) == [0, 2, 4]
    assert partition([10, 1, 1, 10], 2) == [0, 2, 4]
    assert partition([4, 4, 1, 1, 1, 1], 3) == [0, 1, 2, 6]
    with pytest.raises(ValueError):
        partition([1], 2)
