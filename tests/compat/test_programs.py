"""PyTorch programs run twice: as written with PyTorch, and with their imports rewritten to somanet.

Each program in ``programs/`` is ordinary PyTorch code whose ``main()`` returns a dict of results.
The somanet run is the same source after the mechanical import rewrite of ``porting.py`` and nothing
else; every program here ports unchanged (the table in ``PROGRAMS`` records it). Programs are made
comparable by starting from weights drawn with NumPy and copied in, by fixed data and by no shuffling
where the numbers are compared; results whose key starts with ``_`` depend on a framework's own random
generator and are reported, not compared (those programs assert in their own code that they learned).

Programs that import torchvision cannot run their reference with real torchvision here (it does not
install beside this PyTorch build): their reference run replaces torchvision with
``torchvision_standin.py``, torchvision's documented behaviour written in plain PyTorch.
"""
import math
import os

import pytest

import somanet
from compat import porting, torchvision_standin

torch = pytest.importorskip("torch")

PROGRAM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs")


class Spec:
    """How to run and compare one program.

    Args:
        rtol, atol: tolerances for the numbers (float32 training runs drift slowly apart).
        needs_mnist: pass ``root=<shared MNIST folder>`` to ``main``.
        uses_torchvision: the reference run uses the torchvision stand-in unless torchvision is installed.
        needs: somanet names the program needs that may not exist yet, as dotted paths under ``somanet``
            (the test skips, naming them, while any is absent).
        ported: how the program ports: "unchanged" (imports rewritten only) or what had to change.
    """

    def __init__(self, rtol=1e-4, atol=1e-6, needs_mnist=False, uses_torchvision=False, needs=(),
                 ported="unchanged"):
        self.rtol, self.atol = rtol, atol
        self.needs_mnist, self.uses_torchvision, self.needs = needs_mnist, uses_torchvision, needs
        self.ported = ported


PROGRAMS = {
    "mlp_regression": Spec(rtol=1e-3, atol=1e-5),
    "cnn_mnist": Spec(rtol=2e-3, atol=1e-4, needs_mnist=True, uses_torchvision=True),
    "lstm_packed": Spec(rtol=2e-3, atol=1e-4),
    "transformer_encoder": Spec(rtol=2e-3, atol=1e-4),
    "custom_function": Spec(rtol=1e-4, atol=1e-5),
    "manual_gradient_descent": Spec(rtol=1e-4, atol=1e-6),
    "device_aware": Spec(rtol=1e-3, atol=1e-5),
    "buffers_state_dict": Spec(rtol=1e-4, atol=1e-6, needs=("save", "load")),
    "init_and_clipping": Spec(rtol=1e-5, atol=1e-6),
    "char_gru": Spec(rtol=2e-3, atol=1e-4),
    "vae_reparameterisation": Spec(rtol=1e-5, atol=1e-6),
    "fakedata_pipeline": Spec(uses_torchvision=True),
    "custom_dataset_loader": Spec(rtol=1e-6, atol=1e-6),
    "losses_and_schedules": Spec(rtol=1e-5, atol=1e-7),
    "embedding_losses": Spec(rtol=1e-3, atol=1e-5, needs=("nn.CosineEmbeddingLoss", "nn.MarginRankingLoss",
                                                         "nn.TripletMarginLoss", "nn.functional.cosine_embedding_loss",
                                                         "nn.functional.margin_ranking_loss",
                                                         "nn.functional.triplet_margin_loss"),
                             ported="unchanged source; skipped while somanet lacks the losses in needs"),
}


def _missing(dotted):
    """Whether ``somanet.<dotted>`` does not exist."""
    obj = somanet
    for part in dotted.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            return True
    return False


def _compare(ours, ref, spec, where):
    if isinstance(ref, dict):
        assert isinstance(ours, dict), f"{where}: somanet gave {type(ours).__name__}, PyTorch a dict"
        ref_keys = {k for k in ref if not k.startswith("_")}
        our_keys = {k for k in ours if not k.startswith("_")}
        assert our_keys == ref_keys, f"{where}: keys {sorted(our_keys ^ ref_keys)} differ"
        for key in sorted(ref_keys):
            _compare(ours[key], ref[key], spec, f"{where}[{key!r}]")
    elif isinstance(ref, (list, tuple)):
        assert isinstance(ours, (list, tuple)) and len(ours) == len(ref), f"{where}: {ours!r} != {ref!r}"
        for i, (a, b) in enumerate(zip(ours, ref)):
            _compare(a, b, spec, f"{where}[{i}]")
    elif isinstance(ref, bool) or isinstance(ref, str):
        assert ours == ref, f"{where}: somanet {ours!r} != PyTorch {ref!r}"
    elif isinstance(ref, (int, float)):
        assert isinstance(ours, (int, float)) and not isinstance(ours, bool), f"{where}: got {ours!r}"
        assert math.isclose(ours, ref, rel_tol=spec.rtol, abs_tol=spec.atol), \
            f"{where}: somanet {ours!r} != PyTorch {ref!r} (rtol {spec.rtol}, atol {spec.atol})"
    else:
        raise TypeError(f"{where}: programs should return numbers, strings and lists, got {type(ref).__name__}")


def _reference_run(path, spec, kwargs):
    if spec.uses_torchvision:
        try:
            import torchvision  # noqa: F401  - the real one, where it is installed
        except ImportError:
            with porting.modules_installed(torchvision_standin.modules()):
                return porting.run_program(path, "torch", **kwargs)
    return porting.run_program(path, "torch", **kwargs)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_runs_the_same_on_both(name, request):
    spec = PROGRAMS[name]
    missing = [attr for attr in spec.needs if _missing(attr)]
    if missing:
        pytest.skip(f"{name} needs {', '.join('torch.' + m for m in missing)}, which somanet does not have yet "
                    f"({', '.join('somanet.' + m for m in missing)})")
    kwargs = {"root": request.getfixturevalue("mnist_root")} if spec.needs_mnist else {}
    path = os.path.join(PROGRAM_DIR, name + ".py")
    torch.manual_seed(0)
    reference = _reference_run(path, spec, kwargs)
    somanet.manual_seed(0)
    ours = porting.run_program(path, "somanet", **kwargs)
    _compare(ours, reference, spec, name)


def test_every_program_is_listed():
    found = {f[:-3] for f in os.listdir(PROGRAM_DIR) if f.endswith(".py")}
    assert found == set(PROGRAMS)
