"""The convolution shape sweep on a two-shape grid: the frameworks agree on every result, the rows, the
summary, the Markdown and JSON files and the docs section have their structure. No timing is asserted."""
import json
import os
import sys

import pytest

from reference import torch_or_skip

torch = torch_or_skip()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from benchmarks import sweep  # noqa: E402

TINY = {"warmup": 1, "blocks": 1, "block_s": 0.001, "settle_s": 0.0}
SHAPES = [sweep.Shape(2, 3, 4, 9, 5, 2, "train"), sweep.Shape(1, 4, 8, 7, 3, 1, "inference")]


def test_both_frameworks_agree_on_output_and_gradients():
    for shape in SHAPES:
        assert sweep.check_shape(torch, shape) < 1e-5, shape.label()


def test_run_rows_summary_and_markdown():
    results = sweep.run(SHAPES, threads=1, cfg=TINY, log=lambda *a: None)
    rows = results["rows"]
    assert [(r["k"], r["stride"], r["mode"]) for r in rows] == [(5, 2, "train"), (3, 1, "inference")]
    for r in rows:
        assert r["somanet_s"] > 0 and r["torch_s"] > 0
        assert r["ratio"] == pytest.approx(r["torch_s"] / r["somanet_s"])
        assert r["max_rel_diff"] < 1e-5
    summary = results["summary"]
    assert summary["count"] == 2
    assert summary["min"] == min(r["ratio"] for r in rows)
    assert summary["median"] == pytest.approx(sum(r["ratio"] for r in rows) / 2)
    text = sweep.render(results)
    assert "| shape | somanet | PyTorch | torch / somanet |" in text
    assert "2x3x9x9 -> 4, k5 s2 p2, train" in text and "median ratio" in text and "Worst rows" in text


def test_main_writes_json_markdown_and_docs_section(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## Kernels\n\nsomeone else's section\n")
    out_json, out_md = tmp_path / "sweep.json", tmp_path / "sweep.md"
    rc = sweep.main(["--count", "2", "--no-named", "--max-work", "2e5", "--quick", "--threads", "1",
                     "--json", str(out_json), "--markdown", str(out_md), "--write", "--docs", str(docs)])
    assert rc == 0
    data = json.loads(out_json.read_text())
    assert set(data) == {"machine", "results"}
    rows = data["results"]["rows"]
    assert len(rows) == 2 and all(r["label"] and r["ratio"] > 0 and r["max_rel_diff"] < 1e-4 for r in rows)
    assert out_md.read_text().startswith("Machine: ")
    text = docs.read_text()
    assert "someone else's section" in text and "## Convolution shape sweep" in text


def test_grids():
    full = sweep.full_grid(max_work=1e7)
    assert full and all(3 * s.work() <= 1e7 for s in full)
    assert {s.k for s in full} == {1, 3, 5, 7} and {s.stride for s in full} == {1, 2}
    sample = sweep.sample_grid(4, seed=1, max_work=1e7, named=False)
    labels = [s.label() for s in sample]
    assert len(labels) == 4 and labels == [s.label() for s in sweep.sample_grid(4, seed=1, max_work=1e7, named=False)]
    named = [s.label() for s in sweep.named_shapes("train") + sweep.named_shapes("inference")]
    assert [s.label() for s in sweep.sample_grid(4, seed=1, max_work=1e7)] == named + labels


def test_somanet_bench_sweep_options_reach_the_sweep():
    import argparse

    from somanet.cli import bench

    parser = argparse.ArgumentParser()
    bench.add_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", "--sweep", "--full", "--threads", "2", "--json", "s.json", "--write"])
    argv = bench._sweep_argv(args)
    assert argv == ["--full", "--write", "--threads", "2", "--json", "s.json"]
    assert sweep.build_parser().parse_args(argv).full
