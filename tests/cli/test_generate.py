"""``somanet generate`` end to end on a tiny ``shakespeare-char`` run trained in a temporary folder: seeded,
greedy and filtered sampling, and clear errors (exit status 2) for unknown prompt characters, an empty
prompt, bad options and runs that are not language models."""
import json
import os
import re
import subprocess
import sys

import pytest

from somanet.cli import main
from somanet.cli import recipes as registry
from somanet.cli.recipes_lm import CharGPT
from somanet.train.checkpoint import load_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--set", "model.n_layer=1", "--set", "model.n_head=2", "--set", "model.d_model=16",
        "--set", "data.block_size=16", "--set", "data.max_chars=20000", "--set", "model.report.max_new_tokens=20"]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A shakespeare-char run of a few steps on the text's first 20,000 characters."""
    out = str(tmp_path_factory.mktemp("lm") / "run")
    assert main(["train", "shakespeare-char", "--out", out, "--max-steps", "4", "--no-plots", *TINY]) == 0
    assert os.path.isfile(os.path.join(out, "samples.txt"))
    return out


def generate(capsys, *args):
    code = main(["generate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_model(run_dir):
    with open(os.path.join(run_dir, "config.json")) as f:
        cfg = json.load(f)
    model = registry.build_model(cfg)
    load_checkpoint(os.path.join(run_dir, "checkpoints", "last")).load_model(model)
    return model


def test_seeded_sampling_is_repeatable(lm_run, capsys):
    code, first, _ = generate(capsys, lm_run, "--prompt", "ROMEO:", "--max-new-tokens", "40", "--seed", "7")
    assert code == 0 and first.startswith("ROMEO:") and len(first) == len("ROMEO:") + 40 + 1
    assert generate(capsys, lm_run, "--prompt", "ROMEO:", "--max-new-tokens", "40", "--seed", "7")[1] == first
    assert generate(capsys, lm_run, "--prompt", "ROMEO:", "--max-new-tokens", "40", "--seed", "8")[1] != first


def test_greedy_and_filters_follow_the_model(lm_run, capsys):
    model = run_model(lm_run)
    assert isinstance(model, CharGPT)
    expected = model.decode(model.generate(model.encode("ROMEO")[None], 25, do_sample=False).array[0])
    for flags in (["--greedy"], ["--temperature", "0"], ["--top-k", "1", "--seed", "3"],
                  ["--top-p", "1e-9", "--seed", "4"]):
        code, out, _ = generate(capsys, lm_run, "--prompt", "ROMEO", "--max-new-tokens", "25", *flags)
        assert code == 0 and out == expected + "\n", flags
    code, out, _ = generate(capsys, lm_run, "--prompt", "ROMEO", "--max-new-tokens", "25", "--temperature", "0.7",
                            "--top-k", "5", "--top-p", "0.9", "--seed", "1")
    assert code == 0 and len(out) == 5 + 25 + 1 and set(out[:-1]) <= set(model.vocab)


def test_unknown_prompt_characters_exit_2_naming_them(lm_run):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "somanet.cli", "generate", lm_run, "--prompt", "Ωmega\tß"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "3 character(s) that are not in the model's vocabulary: '\\t', 'ß', 'Ω'" in proc.stderr


def test_bad_input_is_refused(lm_run, tmp_path, capsys):
    code, out, err = generate(capsys, lm_run, "--prompt", "")
    assert code == 2 and out == "" and "--prompt is empty" in err
    code, _, err = generate(capsys, str(tmp_path / "nowhere"))
    assert code == 2 and "does not exist" in err
    for flags, message in ((["--temperature", "-1"], "expected a number >= 0, got -1"),
                           (["--top-p", "1.5"], r"expected a number in \(0, 1\], got 1.5"),
                           (["--top-k", "0"], "expected a positive integer, got 0")):
        with pytest.raises(SystemExit) as exc:
            main(["generate", lm_run, *flags])
        assert exc.value.code == 2
        assert re.search(message, capsys.readouterr().err)


def test_a_run_that_is_not_a_language_model_is_refused(tmp_path, capsys):
    out = str(tmp_path / "spirals")
    assert main(["train", "spirals-mlp", "--out", out, "--max-steps", "1", "--no-plots"]) == 0
    capsys.readouterr()
    code, _, err = generate(capsys, out, "--prompt", "hi")
    assert code == 2 and "spirals-mlp" in err and "does not generate text" in err
