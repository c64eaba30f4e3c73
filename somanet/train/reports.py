"""The end-of-run report of an evaluation callback: its numbers as JSON, its section of ``summary.txt``
and its pictures, in the run directory.

Used by the applications' reports (detection, segmentation, recommendation, translation, forecasting)
and the generative ones (``generative.write_report``).
"""
import json
import os

from ._io import atomic_write_text

__all__ = ["write_run_report", "resolve_split"]


def resolve_split(data):
    """``(dataset, split name)`` from a report's data argument: a dataset, a function returning one, or
    either giving ``(dataset, split_name)``; the name defaults to ``"test"``."""
    data = data() if callable(data) else data
    return data if isinstance(data, tuple) else (data, "test")


def write_run_report(run_dir, filename, results, lines, marker, draw=None, drawing="pictures", verbose=False):
    """Save ``results`` as JSON in ``run_dir/filename`` and put ``lines`` at the end of
    ``run_dir/summary.txt``, replacing an earlier section that starts with ``marker`` (so a report
    written again at a later end of the same run is not repeated); both files are written atomically.

    Then ``draw()``, when given, makes the report's pictures: without their optional dependency (an
    ImportError) the report says ``"<drawing> skipped: <reason>"`` and goes on. With ``verbose`` the
    lines are printed last.
    """
    atomic_write_text(os.path.join(run_dir, filename), json.dumps(results, indent=2) + "\n")
    path = os.path.join(run_dir, "summary.txt")
    old = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
    if marker in old:
        old = old[:old.index(marker)]
    atomic_write_text(path, old.rstrip("\n") + ("\n\n" if old.strip() else "") + "\n".join(lines) + "\n")
    if draw is not None:
        try:
            draw()
        except ImportError as exc:
            print(f"{drawing} skipped: {exc}")
    if verbose:
        print("\n".join(lines), flush=True)
