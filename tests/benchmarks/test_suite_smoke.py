"""The benchmark suite's quick mode on tiny settings: structure of the results, the JSON, the Summary
section (placed at the top, other sections kept) and the plot. No timing is asserted."""
import json
import os
import sys

import pytest

from reference import torch_or_skip

torch_or_skip()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from benchmarks import suite  # noqa: E402
from benchmarks import workloads  # noqa: E402


def test_quick_suite_writes_table_json_and_plot(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## MLP training step\n\nsomeone else's section\n")
    out_json = tmp_path / "suite.json"
    png = tmp_path / "ratios.png"
    rc = suite.main(["--quick", "--only", "mlp", "--threads", "1", "--blocks", "1", "--block-seconds", "0.01",
                     "--no-import", "--write", "--docs", str(docs), "--plot", str(png), "--json", str(out_json)])
    assert rc == 0
    data = json.loads(out_json.read_text())
    assert set(data) == {"machine", "results"}
    res = data["results"]
    assert [(r["key"], r["mode"]) for r in res["timings"]] == [("mlp", "train"), ("mlp", "inference")]
    for r in res["timings"]:
        for field in ("somanet_s", "torch_s", "ratio", "somanet_samples_s", "torch_samples_s", "somanet_gflops",
                      "torch_gflops", "target", "met"):
            assert field in r, field
        assert r["somanet_s"] > 0 and r["torch_s"] > 0
        assert r["ratio"] == pytest.approx(r["torch_s"] / r["somanet_s"])
    assert res["timings"][0]["target"] == 1.3 and res["timings"][1]["target"] == 1.0
    assert res["sgemm"]["numpy_gflops"] > 0 and res["sgemm"]["torch_gflops"] > 0
    assert "mlp" in res["sgemm_share"]
    (mem,) = res["memory"]
    assert mem["key"] == "mlp" and mem["somanet_mib"] >= 0 and mem["torch_mib"] >= 0 and mem["somanet_numpy_mib"] >= 0
    assert mem["numba_runtime_mib"] >= 0
    assert res["settings"]["threads"] == 1 and "import" not in res

    text = docs.read_text()
    assert text.index("## Summary") < text.index("## MLP training step")
    assert "someone else's section" in text
    assert "| workload | mode | batch | somanet | PyTorch | torch / somanet |" in text
    assert "| MLP 784-512-256-10 | train | 128 |" in text
    assert "Peak memory of a training step" in text
    assert png.exists() and png.stat().st_size > 0
    # Writing again replaces the section in place instead of adding a second one.
    suite.write_summary("replaced", str(docs))
    text = docs.read_text()
    assert text.count("## Summary") == 1 and "replaced" in text and "someone else's section" in text


def test_unknown_workload_is_refused(capsys):
    assert suite.main(["--only", "mlp,nope", "--no-memory", "--no-import"]) == 2
    assert "unknown workload(s) nope" in capsys.readouterr().err


def test_flop_counts_match_hand_counts():
    mlp = workloads.WORKLOADS["mlp"]
    fwd = 2 * 128 * (784 * 512 + 512 * 256 + 256 * 10)
    assert workloads.count_flops(mlp, train=False) == fwd
    # Backward: every weight gradient, and input gradients except the first layer's (its input is data).
    assert workloads.count_flops(mlp, train=True) == 3 * fwd - 2 * 128 * 784 * 512


# --------------------------------------------------------------------------- somanet bench
def test_blas_environment_never_overrides_the_user_and_needs_avx512():
    from somanet.cli import bench

    avx512 = {"fma", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq"}
    env, note = bench.blas_environment({"PATH": "x"}, None, flags=avx512)
    assert "OPENBLAS_CORETYPE" not in env and env["PATH"] == "x" and "OpenBLAS chooses" in note
    env, note = bench.blas_environment({}, "SkylakeX", flags=avx512)
    assert env["OPENBLAS_CORETYPE"] == "SkylakeX"
    with pytest.raises(bench.BenchError, match="needs AVX-512"):
        bench.blas_environment({}, "skylakex", flags={"fma", "avx2", "avx512f"})
    env, _ = bench.blas_environment({}, "Haswell", flags={"fma", "avx2"})
    assert env["OPENBLAS_CORETYPE"] == "Haswell"
    env, note = bench.blas_environment({"OPENBLAS_CORETYPE": "Haswell"}, "SkylakeX", flags=avx512)
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and "from the environment" in note
    env, _ = bench.blas_environment({}, "default", threads=1, flags=avx512)
    assert "OPENBLAS_CORETYPE" not in env and env["OPENBLAS_NUM_THREADS"] == "1"
    env, _ = bench.blas_environment({"OPENBLAS_NUM_THREADS": "2"}, "Zen", threads=1, flags=set())
    assert env["OPENBLAS_CORETYPE"] == "Zen" and env["OPENBLAS_NUM_THREADS"] == "2"


def test_cpu_flags_reads_the_flags_line(tmp_path):
    from somanet.cli import bench

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512vl avx512dq\n")
    assert bench.avx512_supported(bench.cpu_flags(str(info)))
    assert bench.cpu_flags(str(tmp_path / "missing")) == set()


def test_bench_command_without_torch_gives_an_install_hint(monkeypatch, capsys):
    import importlib.util

    from somanet.cli import main as somanet_main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert somanet_main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "PyTorch, which is not installed" in err and "pip install torch" in err


def test_bench_command_forwards_its_options():
    from somanet.cli import bench, build_parser

    args = build_parser().parse_args(["bench", "--quick", "--only", "mlp", "--threads", "1", "--json",
                                               "out.json", "--no-memory", "--mode", "train", "--clock", "cpu"])
    assert args.func is bench.cmd_bench
    argv = bench._suite_argv(args)
    assert argv[:2] == ["--quick", "--no-memory"]
    assert ["--only", "mlp"] == argv[2:4] and ["--threads", "1"] == argv[4:6] and ["--json", "out.json"] == argv[6:8]
    assert argv[-4:] == ["--mode", "train", "--clock", "cpu"]
    parsed = suite.build_parser().parse_args(argv)
    assert parsed.quick and parsed.clock == "cpu" and parsed.threads == 1
    args = build_parser().parse_args(["bench", "--write", "--section", "One thread"])
    parsed = suite.build_parser().parse_args(bench._suite_argv(args))
    assert parsed.write and parsed.section == "One thread"


def test_top_sections_keep_their_order(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    suite.write_top_section("BLAS kernels", "blas", str(docs), after="Summary")
    suite.write_summary("summary", str(docs))
    suite.write_top_section("BLAS kernels", "blas again", str(docs), after="Summary")
    text = docs.read_text()
    assert text.index("## Summary") < text.index("## BLAS kernels") < text.index("## Other")
    assert "blas again" in text and text.count("## BLAS kernels") == 1 and "kept" in text
    suite.write_top_section("One thread", "single", str(docs), after="Summary")
    text = docs.read_text()
    assert text.index("## Summary") < text.index("## One thread") < text.index("## BLAS kernels")


def test_recurrent_flops_counted_per_token_even_without_module_hooks():
    lstm = workloads.WORKLOADS["lstm"]
    tokens = 32 * 64
    gates = 4 * 256
    fwd = 2 * tokens * ((128 + 256) * gates + (256 + 256) * gates) + 2 * tokens * 256 * 65
    assert workloads.count_flops(lstm, train=False) == fwd
    assert workloads.count_flops(lstm, train=True) == 3 * fwd


def test_elementwise_op_benchmarks_run_both_frameworks():
    from benchmarks import bench_ops

    rows = bench_ops.elementwise_workloads(torch_or_skip(), shape=(4, 8))
    names = [name for name, _, _ in rows]
    assert len(names) == len(set(names)) and "LeakyReLU fwd+bwd" in names and "HuberLoss fwd+bwd" in names
    for _, s_fn, t_fn in rows:
        s_fn()
        t_fn()


def test_linear_benchmarks_run_both_frameworks_on_the_same_weights():
    from benchmarks import bench_ops

    torch = torch_or_skip()
    rows = bench_ops.linear_workloads(torch, features=(6, 5), batches=(1, 3), train_batches=(2,))
    assert [name for name, _, _ in rows] == ["Linear 6 -> 5, 1 rows, forward (no_grad)",
                                             "Linear 6 -> 5, 3 rows, forward (no_grad)", "Linear 6 -> 5, 2 rows, fwd+bwd"]
    for _, s_fn, t_fn in rows:
        s_fn()
        t_fn()
