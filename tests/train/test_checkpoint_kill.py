"""A process killed at any moment of a checkpoint save: the next load finds the newest complete
checkpoint, training resumes from it bit for bit, and nothing the killed writer left stays behind.

The killed runs are child processes (this file run as a script) that SIGKILL themselves at a chosen
point of ``atomic_replace_dir``: right after a given file operation of the Nth save of ``last``.
"""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from somanet import optim
from somanet.models import MLP
from somanet.train import Trainer, load_checkpoint, seed_everything

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="kills a child process with SIGKILL and reads /proc")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPOCHS = 4


def _fit(run_dir, epochs=EPOCHS, resume=None):
    seed_everything(11)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((48, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    model = MLP(5, [8], 2, dropout=0.2)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    trainer = Trainer(run_dir=run_dir, enable_progress_bar=False, plots=False)
    trainer.fit(model, (x[:32], y[:32]), (x[32:], y[32:]), epochs=epochs, optimizer=opt, loss="cross_entropy",
                metrics=["accuracy"], batch_size=8, resume=resume)
    return model, opt, trainer


def _child(run_dir, point, nth):
    """Train, and die by SIGKILL at ``point`` of the ``nth`` save of checkpoints/last."""
    last = os.path.abspath(os.path.join(run_dir, "checkpoints", "last"))
    parent = os.path.dirname(last)
    real_replace, real_rmtree, real_fsync = os.replace, None, os.fsync
    import shutil
    real_rmtree = shutil.rmtree
    saves = [0]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def is_last_tmp(path):
        name = os.path.basename(os.fspath(path))
        return os.path.dirname(os.path.abspath(path)) == parent and name.startswith(".last.tmp-")

    def replace(src, dst, *args, **kwargs):
        if is_last_tmp(src):
            saves[0] += 1  # the new directory goes in: this save's last step
        moving_aside = os.path.abspath(src) == last
        real_replace(src, dst, *args, **kwargs)
        current = saves[0] + (1 if moving_aside else 0)
        if current == nth and ((point == "aside" and moving_aside) or (point == "in" and is_last_tmp(src))):
            die()

    def rmtree(path, *args, **kwargs):
        name = os.path.basename(os.fspath(path))
        if point == "deleting-old" and saves[0] == nth and name.startswith(".last.old-"):
            # Kill half way: one file of the old directory deleted, the rest still there.
            os.remove(os.path.join(path, "model.safetensors"))
            die()
        return real_rmtree(path, *args, **kwargs)

    fsyncs = [0]

    def fsync(fd):
        real_fsync(fd)
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            where = ""
        if point == "writing" and "/.last.tmp-" in where:
            fsyncs[0] += 1
            if fsyncs[0] == 4 * (nth - 1) + 2:  # two of the four files of the nth save written
                die()

    os.replace = replace
    shutil.rmtree = rmtree
    os.fsync = fsync
    _fit(run_dir)
    sys.exit(3)  # not killed: the test's kill point was never reached


def _killed_run(run_dir, point, nth):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), str(run_dir), point, str(nth)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-3000:])


def _hidden(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith("."))


def _assert_same_training(a, b):
    model_a, opt_a, _ = a
    model_b, opt_b, _ = b
    for key, value in model_a.state_dict().items():
        assert np.array_equal(value.array, model_b.state_dict()[key].array), key
    state_a, state_b = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
    assert state_a.keys() == state_b.keys()
    for i in state_a:
        for k in state_a[i]:
            assert np.array_equal(np.asarray(state_a[i][k]), np.asarray(state_b[i][k])), (i, k)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return _fit(str(tmp_path_factory.mktemp("whole") / "run"))


def test_kill_between_the_two_renames_resumes_from_the_newest_checkpoint_bit_exactly(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    # The third save of 'last' (end of epoch 3) is killed after the old 'last' (epoch 2) was moved
    # aside and before the new one was moved in: no checkpoints/last, both complete under hidden names.
    _killed_run(run_dir, "aside", 3)
    folder = run_dir / "checkpoints"
    assert not (folder / "last").exists()
    hidden = _hidden(folder)
    assert [n.split("-")[0] for n in hidden] == [".last.old", ".last.tmp"], hidden
    ckpt = load_checkpoint(run_dir)
    assert ckpt.trainer_state["epoch"] == 2 and ckpt.trainer_state["epoch_done"]  # epoch 3 of 4, not epoch 2
    assert os.path.samefile(ckpt.path, folder / "last")  # moved back into place
    assert _hidden(folder) == []  # and the older copy deleted
    resumed = _fit(str(run_dir), resume=str(run_dir))
    assert resumed[2].current_epoch == EPOCHS
    _assert_same_training(resumed, uninterrupted)


@pytest.mark.parametrize("point, nth, epoch", [
    ("writing", 2, 0),        # killed while the new files are written: the old checkpoint stays
    ("in", 2, 1),             # killed after the new one went in, before the old one was deleted
    ("deleting-old", 2, 1),   # killed half way through deleting the old one
])
def test_a_kill_anywhere_in_a_save_leaves_a_loadable_checkpoint_and_no_debris(tmp_path, point, nth, epoch):
    run_dir = tmp_path / "run"
    _killed_run(run_dir, point, nth)
    folder = run_dir / "checkpoints"
    assert any(n.startswith(".last.") for n in _hidden(folder)), _hidden(folder)
    assert load_checkpoint(run_dir).trainer_state["epoch"] == epoch
    assert _hidden(folder) == []


def test_the_next_save_deletes_what_killed_saves_left(tmp_path):
    run_dir = tmp_path / "run"
    _killed_run(run_dir, "writing", 2)
    _killed_run(tmp_path / "other", "aside", 2)
    folder = run_dir / "checkpoints"
    # Debris of two more killed saves of the same folder, copied from the second run.
    for name in _hidden(tmp_path / "other" / "checkpoints"):
        os.rename(tmp_path / "other" / "checkpoints" / name, folder / name)
    assert len(_hidden(folder)) == 3
    seed_everything(0)
    from somanet.train import save_checkpoint
    save_checkpoint(folder / "best", MLP(5, [8], 2), {"epoch": 9})  # a save anywhere in the folder tidies it
    assert _hidden(folder) == [] and sorted(os.listdir(folder)) == ["best", "last"]


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
