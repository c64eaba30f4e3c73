"""``somanet doctor``: diagnose a finished (or stopped) training run and print the doctor's report.

    somanet doctor runs/digits-mlp-001
    somanet doctor runs/digits-mlp-001 --write            # also rewrite doctor.md and its plots
    somanet doctor runs/x --threshold dead_relu_fraction=0.8

The run directory's ``doctor.json`` (the raw measurements the Trainer's ``Doctor`` saved) is diagnosed
again, with the thresholds given here; a run without it (``doctor=False``, or another program) is
diagnosed from its ``metrics.csv`` alone, which covers the loss-curve findings (divergence,
overfitting, plateau, underfitting, NaN) but not gradients or activations.
"""
import os
import sys

__all__ = ["add_parser", "cmd_doctor"]


class DoctorError(Exception):
    """Bad input to ``somanet doctor``; printed as one line with exit status 2."""


def add_parser(sub):
    """Register ``doctor`` on the ``somanet`` command's subparsers."""
    p = sub.add_parser("doctor", help="diagnose a training run: why it fails, with evidence and advice",
                       description="Diagnose a run directory from its doctor.json (or metrics.csv) and print the "
                                   "report: vanishing/exploding gradients, layers not learning, dead or saturated "
                                   "units, learning rate too high, overfitting, NaN.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by the Trainer or 'somanet train'")
    p.add_argument("--threshold", action="append", default=[], metavar="NAME=VALUE",
                   help="override a threshold (repeatable); see docs/doctor.md for the names")
    p.add_argument("--write", action="store_true", help="rewrite RUN_DIR/doctor.md (and its plots)")
    p.add_argument("--no-plots", action="store_true", help="with --write, do not draw plots")
    p.set_defaults(func=cmd_doctor)


def _thresholds(items):
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise DoctorError(f"--threshold expects NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise DoctorError(f"--threshold {name}: expected a number, got {value!r}") from None
    return out


def cmd_doctor(args):
    """Run ``somanet doctor``; returns the exit status (0 healthy, 1 problems found, 2 bad input)."""
    from ..train import doctor
    try:
        run_dir = args.run_dir
        if not os.path.isdir(run_dir):
            raise DoctorError(f"run directory {run_dir} does not exist or is not a directory")
        record_path = os.path.join(run_dir, "doctor.json")
        metrics_path = os.path.join(run_dir, "metrics.csv")
        try:
            if os.path.exists(record_path):
                record = doctor.load_record(record_path)
            elif os.path.exists(metrics_path):
                record = doctor.record_from_metrics(metrics_path)
            else:
                raise DoctorError(f"{run_dir} has neither doctor.json nor metrics.csv: not a training run directory")
            findings = doctor.diagnose(record, _thresholds(args.threshold))
        except ValueError as exc:
            raise DoctorError(str(exc)) from None
    except DoctorError as exc:
        print(f"somanet: error: {exc}", file=sys.stderr)
        return 2
    if args.write:
        path = doctor.write_report(findings, run_dir, record, plots=not args.no_plots)
    print(doctor.render_report(findings, record))
    if args.write:
        print(f"Written to {path}")
    return 1 if findings else 0
