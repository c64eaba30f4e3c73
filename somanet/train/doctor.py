"""The training doctor: says why a training run goes wrong, with the evidence and what to change.

``Trainer`` adds a ``Doctor`` callback by default. Every ``every_n_steps`` optimizer steps it measures,
for that one step only: each layer's gradient and weight norms and the size of the update relative to
the weights, and (through forward hooks attached for that step and removed after it) each layer's
output: dead ReLU units, saturated sigmoid/tanh units, activation magnitudes. Every step it keeps the
loss (one float); every epoch the logs. When the loss turns NaN or Inf it runs that batch again under
``somanet.autograd.detect_anomaly`` to name the first op and the layer that produced it.

At the end of ``fit`` the measurements are diagnosed into findings (vanishing or exploding gradients,
layers that do not learn, dead or saturated units, growing activations, a learning rate too high,
overfitting, a plateau, underfitting, NaN/Inf), each with its evidence and concrete advice. With a
``run_dir`` the report goes to ``doctor.md`` (with plots in ``plots/``) and the raw measurements to
``doctor.json``, from which ``somanet doctor RUN_DIR`` diagnoses the run again.

>>> trainer = Trainer(run_dir="runs/exp")                          # doctor on by default  # doctest: +SKIP
>>> trainer = Trainer(doctor=Doctor(every_n_steps=10, thresholds={"dead_relu_fraction": 0.8}))  # doctest: +SKIP
>>> trainer.doctor.findings                                          # after fit  # doctest: +SKIP
"""
import collections
import copy
import csv
import json
import math
import os
import sys

import numpy as np

from ._io import atomic_write_text
from .callbacks import Callback

__all__ = ["Doctor", "Finding", "DEFAULT_THRESHOLDS", "diagnose", "load_record", "record_from_metrics",
           "render_report", "write_report", "save_record", "brief", "locate_non_finite"]

#: The thresholds of the diagnosis; ``Doctor(thresholds={...})`` overrides any of them.
DEFAULT_THRESHOLDS = {
    # gradient flow
    "vanishing_ratio": 1e-3,        # gradient RMS of the first layer / the last layer below this: vanishing
    "exploding_ratio": 1e3,         # ... above this: exploding toward the input
    "exploding_grad_norm": 1e3,     # a total gradient norm above this: exploding
    "update_ratio_min": 1e-6,       # a layer whose median update / weight norm is below this does not learn
    # activations
    "dead_relu_fraction": 0.5,      # a ReLU with more units than this never active over the recent samples
    "saturation_fraction": 0.5,     # a sigmoid/tanh with more outputs than this in its flat tails
    "activation_growth": 100.0,     # an output RMS that grew this many times over the run ...
    "activation_rms_max": 1e3,      # ... and ends above this
    # loss curve
    "divergence_factor": 2.0,       # the loss ends this many times above its lowest point and above its start
    "oscillation_jumps": 0.15,      # share of stretches of steps whose loss jumps above twice the lowest so far
    "overfit_rise": 0.1,            # validation loss this much (relative) above its minimum ...
    "overfit_patience": 2,          # ... for this many epochs while the training loss falls
    "plateau_epochs": 5,            # no epoch improved the training loss by more than ...
    "plateau_improvement": 0.01,    # ... this (relative) over the last plateau_epochs epochs
    "underfit_improvement": 0.05,   # the training loss fell by less than this (relative) over the run
}

_RELU = ("ReLU", "ReLU6", "LeakyReLU", "RReLU", "PReLU")
_SATURATING = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Hardsigmoid": "sigmoid", "Hardtanh": "tanh"}
_RECENT_ACTIVATION_SAMPLES = 20
# Bounds on the record (it goes into every checkpoint): past them, neighbouring entries are merged.
_MAX_LOSS_POINTS = 10000
_MAX_SAMPLES = 2000
_ORDER = {"nan": 0, "exploding_gradients": 1, "vanishing_gradients": 2, "not_learning": 3, "learning_rate": 4,
          "saturation": 5, "dead_relu": 6, "activation_growth": 7, "overfitting": 8, "plateau": 9,
          "underfitting": 10}


# ============================================================================ findings
class Finding:
    """One diagnosed problem: ``kind`` (a short key such as ``"vanishing_gradients"``), ``title``,
    ``summary`` (one sentence), ``evidence`` (lines with the measured numbers), ``advice`` (lines of
    concrete changes), ``plot`` (a PNG path relative to the run directory, or None) and ``data`` (the
    numbers behind it)."""

    def __init__(self, kind, title, summary, evidence, advice, data=None):
        self.kind = kind
        self.title = title
        self.summary = summary
        self.evidence = list(evidence)
        self.advice = list(advice)
        self.data = dict(data or {})
        self.plot = None

    def to_dict(self):
        """The finding as a JSON-friendly dict."""
        return {"kind": self.kind, "title": self.title, "summary": self.summary, "evidence": self.evidence,
                "advice": self.advice, "plot": self.plot, "data": _jsonable(self.data)}

    def __repr__(self):
        return f"Finding({self.kind!r}: {self.summary})"


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else repr(v)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _float(v):
    """A JSON value back to a float (non-finite numbers are stored as their repr)."""
    if isinstance(v, str):
        return float(v)
    return float("nan") if v is None else float(v)


def _fmt(x):
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return repr(x) if not math.isfinite(x) else "0"
    return f"{x:.3g}"


# ============================================================================ the callback
def _check_thresholds(thresholds):
    merged = dict(DEFAULT_THRESHOLDS)
    for key, value in (thresholds or {}).items():
        if key not in DEFAULT_THRESHOLDS:
            raise ValueError(f"Doctor: unknown threshold {key!r}; known thresholds: {', '.join(DEFAULT_THRESHOLDS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"Doctor: threshold {key!r} must be a non-negative number, got {value!r}")
        merged[key] = value
    return merged


class Doctor(Callback):
    """Watch a run and explain what goes wrong (see the module docstring); ``Trainer(doctor=True)`` adds one.

    Args:
        every_n_steps: measure gradients, weights, updates and activations on every this many optimizer
            steps (the first step is always measured). The default keeps the cost under 2 % on a small
            MLP (see docs/doctor.md).
        thresholds: a dict overriding entries of ``DEFAULT_THRESHOLDS``.
        activations: also record layer outputs on measured steps (forward hooks for that step only).
        diagnose_nan: on the first non-finite loss, run the batch again under anomaly mode to name the op
            and the layer that produced it.
        lr_finder: an ``LRFinderResult`` (from ``lr_find``) whose suggestion the advice quotes.
        lr_find: when the learning rate is diagnosed too high, run the range test (``lr_find``, 100 steps)
            from the model's initial weights at the end of ``fit`` and quote its suggestion. Keeps a copy
            of the initial weights during the run.
        verbose: print the findings at the end of ``fit`` (a few lines; one line when healthy).
        plots: draw plots for the findings into ``<run_dir>/plots`` (needs matplotlib).

    After ``fit``: ``findings`` (a list of ``Finding``), ``record`` (the raw measurements) and
    ``report_path`` (``doctor.md``, when the trainer has a ``run_dir``).
    """

    rank_zero_only = True

    def __init__(self, every_n_steps=100, thresholds=None, activations=True, diagnose_nan=True, lr_finder=None,
                 verbose=True, plots=True, lr_find=False):
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"Doctor: every_n_steps must be an int >= 1, got {every_n_steps!r}")
        self.every_n_steps = every_n_steps
        self.thresholds = _check_thresholds(thresholds)
        self.activations = activations
        self.diagnose_nan = diagnose_nan
        self.lr_finder = lr_finder
        self.lr_find = lr_find
        self._initial_model = None
        self.verbose = verbose
        self.plots = plots
        self.findings = []
        self.report_path = None
        self._reset()

    def _reset(self):
        self.record = {"version": 1, "every_n_steps": self.every_n_steps, "layers": [], "layer_types": {},
                       "loss_steps": [], "losses": [], "samples": [], "activations": {}, "epochs": {},
                       "nan": None, "stop_reason": None, "steps_per_epoch": None}
        self._recent = {}
        self._recent_kind = {}
        self._pending = None
        self._handles = []
        self._nan_seen = False
        self._nan_snapshot = None
        self._step_acts = None
        self._loss_acc = [0.0, 0]
        self._bind_losses()

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer, model):
        if not trainer.resumed:
            self._reset()
        self.findings = []
        self.report_path = None
        if self.lr_find and not trainer.resumed:
            self._initial_model = copy.deepcopy(model)
        named = trainer.named_parameters
        self._params = named
        layers = []
        for name, _ in named:
            layer = name.rsplit(".", 1)[0] if "." in name else name
            if layer not in layers:
                layers.append(layer)
        modules = dict(model.named_modules())
        self.record["layers"] = layers
        self.record["layer_types"] = {k: type(modules[k]).__name__ for k in layers if k in modules}
        self.record["steps_per_epoch"] = trainer.num_training_batches
        self._leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
        # A step that optimizes by itself has no moment between backward and update: nothing is measured.
        self._manual = trainer.manual_optimization
        self.record["manual_optimization"] = self._manual
        self._measure_next = trainer.global_step % self.every_n_steps == 0 and not self._manual
        if self._measure_next and self.activations:
            self._attach(model)

    def on_before_optimizer_step(self, trainer, model, optimizer):
        loss = trainer.last_loss
        # `x - x != 0` is the cheapest test for NaN/Inf on a Python float (this runs every step).
        if loss is not None and loss - loss != 0 and not self._nan_seen and self.diagnose_nan:
            # Kept only on the rare bad step: the weights that produced the NaN, in case the step goes ahead.
            self._nan_snapshot = [p.array.copy() for _, p in self._params]  # on the weights' device
        if not self._measure_next:
            return
        step = trainer.global_step
        grad_norms, weight_norms, sizes = {}, {}, {}
        before = []
        for name, p in self._params:
            layer = name.rsplit(".", 1)[0] if "." in name else name
            w = p.array
            g = p.grad
            gn = float(np.sqrt(np.vdot(g.array, g.array))) if g is not None else 0.0
            wn = float(np.sqrt(np.vdot(w, w)))
            grad_norms[layer] = math.hypot(grad_norms.get(layer, 0.0), gn)
            weight_norms[layer] = math.hypot(weight_norms.get(layer, 0.0), wn)
            sizes[layer] = sizes.get(layer, 0) + w.size
            before.append(w.copy())
        total = math.sqrt(sum(v * v for v in grad_norms.values()))
        self._pending = {"step": step, "grad_norm": grad_norms, "weight_norm": weight_norms, "size": sizes,
                         "total_grad_norm": total, "lr": trainer.current_lr, "loss": loss, "before": before}

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
        loss = outputs.get("loss")
        if loss is not None:
            loss = float(loss)
            if self._loss_stride == 1 and len(self._losses) < _MAX_LOSS_POINTS - 1:
                self._loss_steps.append(trainer.global_step)
                self._losses.append(loss)
            else:
                self._add_loss(trainer.global_step, loss)
        if not trainer.at_step_boundary:
            return
        if self._handles:
            self._detach()
        if self._pending is not None:
            self._finish_sample(trainer)
        if (((loss is not None and loss - loss != 0) or (trainer.should_stop and self._nan_stop(trainer)))
                and not self._nan_seen and self.diagnose_nan):
            self._nan_seen = True
            self._diagnose_nan(trainer, model, batch, batch_idx, loss)
        if trainer.global_step % self.every_n_steps == 0 and not self._manual:
            self._measure_next = True
            if self.activations:
                self._attach(model)
        else:
            self._measure_next = False

    def on_train_epoch_end(self, trainer, model):
        epochs = self.record["epochs"]
        n = len(next(iter(epochs.values()))) if epochs else 0
        for key, value in trainer.callback_metrics.items():
            if np.ndim(value) == 0:
                epochs.setdefault(key, [float("nan")] * n).append(float(value))
        for column in epochs.values():
            if len(column) < n + 1:
                column.append(float("nan"))

    def on_train_end(self, trainer, model):
        self._detach()
        self.record["stop_reason"] = trainer.stop_reason
        self._summarise_activations()

    def on_fit_end(self, trainer, model):
        run_dir = trainer.run_dir if trainer.is_global_zero else None
        self.findings = diagnose(self.record, self.thresholds, lr_finder=self.lr_finder)
        if (self.lr_find and self.lr_finder is None and self._initial_model is not None
                and any(f.kind == "learning_rate" for f in self.findings)):
            self._run_lr_finder(trainer)
            self.findings = diagnose(self.record, self.thresholds)
        if run_dir is not None:
            save_record(self.record, os.path.join(run_dir, "doctor.json"))
            self.report_path = write_report(self.findings, run_dir, self.record,
                                            plots=self.plots and getattr(trainer, "plots", True))
        # Problems always get a few lines on stderr; a healthy run one line, only where a report was written.
        if self.verbose and (self.findings or (self.report_path and trainer.enable_progress_bar)):
            print(brief(self.findings, self.report_path), file=sys.stderr if self.findings else sys.stdout)

    def on_exception(self, trainer, model, exception):
        self._detach()

    def _run_lr_finder(self, trainer):
        from .lr_finder import lr_find
        from .trainer import _OPTIMIZERS
        model, self._initial_model = self._initial_model, None
        name = type(trainer.optimizer).__name__.lower()
        try:
            result = lr_find(model, trainer.train_loader, loss=trainer.loss_fn,
                             optimizer=name if name in _OPTIMIZERS else "sgd")
        except Exception as exc:  # advice must not turn a finished run into a crash
            self.record["lr_finder"] = {"error": f"{type(exc).__name__}: {exc}"}
            return
        self.record["lr_finder"] = {"suggestion": result.suggestion, "steepest": result.steepest}

    def state_dict(self):
        self._summarise_activations()
        return {"record": json.loads(json.dumps(_jsonable(self.record))), "nan_seen": self._nan_seen}

    def load_state_dict(self, state):
        self.record = _normalise(json.loads(json.dumps(state["record"])))
        self._nan_seen = state["nan_seen"]
        self._recent, self._recent_kind = {}, {}
        self._bind_losses()

    # ------------------------------------------------------------------ measurements
    def _bind_losses(self):
        # Bound list methods and the stride, looked up once rather than on every step.
        rec = self.record
        self._loss_stride = rec.setdefault("loss_stride", 1)
        self._losses, self._loss_steps = rec["losses"], rec["loss_steps"]

    def _add_loss(self, step, loss):
        rec = self.record
        stride = rec.setdefault("loss_stride", 1)
        if stride > 1:
            # Each point is the mean of `stride` batches: a spike or a NaN still shows in it.
            acc = self._loss_acc
            acc[0] += loss
            acc[1] += 1
            if acc[1] < stride:
                return
            loss, self._loss_acc = acc[0] / acc[1], [0.0, 0]
        rec["loss_steps"].append(step)
        rec["losses"].append(loss)
        if len(rec["losses"]) >= _MAX_LOSS_POINTS:
            losses, steps = rec["losses"], rec["loss_steps"]
            rec["losses"] = [(losses[i] + losses[i + 1]) / 2 for i in range(0, len(losses) - 1, 2)]
            rec["loss_steps"] = steps[1::2]
            rec["loss_stride"] = stride * 2
            self._loss_acc = [0.0, 0]
        self._bind_losses()

    def _finish_sample(self, trainer):
        pending, self._pending = self._pending, None
        before = pending.pop("before")
        updates = {}
        for (name, p), w0 in zip(self._params, before):
            layer = name.rsplit(".", 1)[0] if "." in name else name
            d = p.array - w0
            updates[layer] = math.hypot(updates.get(layer, 0.0), float(np.sqrt(np.vdot(d, d))))
        pending["update_ratio"] = {k: v / max(pending["weight_norm"][k], 1e-12) for k, v in updates.items()}
        pending["update_norm"] = updates
        pending["skipped"] = trainer.global_step == pending["step"]
        acts = self._step_acts
        if acts:
            pending["activations"] = acts
        self._step_acts = None
        samples = self.record["samples"]
        samples.append(pending)
        if len(samples) >= _MAX_SAMPLES:
            del samples[1::2]  # every other one, keeping the first (before any update)

    def _attach(self, model):
        self._step_acts = {}
        for name, module in self._leaves:
            kind = type(module).__name__
            self._handles.append(module.register_forward_hook(self._activation_hook(name, kind)))

    def _detach(self):
        for h in self._handles:
            h.remove()
        self._handles = []

    def _activation_hook(self, name, kind):
        def hook(module, args, out):
            arr = getattr(out, "array", None)
            if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f" or arr.size == 0:
                return None
            a = arr.astype(np.float32, copy=False)
            stats = {"type": kind, "rms": float(np.sqrt(np.vdot(a, a) / a.size))}
            if kind in _RELU:
                # A unit is a feature (dim 1 for conv maps and for (batch, features) outputs).
                axes = tuple(i for i in range(a.ndim) if i != 1) if a.ndim > 1 else ()
                active = (a > 0).any(axis=axes) if axes else a > 0
                stats["inactive_fraction"] = float(1.0 - np.count_nonzero(a > 0) / a.size)
                recent = self._recent.setdefault(name, collections.deque(maxlen=_RECENT_ACTIVATION_SAMPLES))
                self._recent_kind[name] = kind
                recent.append(active)
            elif kind in _SATURATING:
                if _SATURATING[kind] == "sigmoid":
                    sat = np.count_nonzero((a < 0.01) | (a > 0.99))
                else:
                    sat = np.count_nonzero(np.abs(a) > 0.99)
                stats["saturated_fraction"] = float(sat / a.size)
            if self._step_acts is not None:
                self._step_acts[name] = stats
            return None

        return hook

    def _summarise_activations(self):
        acts = self.record["activations"]
        for name, recent in self._recent.items():
            if not recent or len({m.shape for m in recent}) != 1:
                continue
            ever = np.logical_or.reduce(np.stack(list(recent)), axis=0)
            acts[name] = {"type": self._recent_kind.get(name, "ReLU"),
                          "units": int(ever.size), "batches": len(recent),
                          "dead_fraction": float(1.0 - np.count_nonzero(ever) / ever.size)}

    def _nan_stop(self, trainer):
        if not trainer.should_stop or not trainer.stop_reason:
            return False
        return "non-finite" in trainer.stop_reason

    def _diagnose_nan(self, trainer, model, batch, batch_idx, loss):
        info = {"step": trainer.global_step if trainer.skip_optimizer_step else trainer.global_step - 1,
                "epoch": trainer.current_epoch, "batch": batch_idx, "loss": loss}
        info["step"] = max(info["step"], 0)
        info["input_finite"] = _batch_finite(batch)
        snapshot, self._nan_snapshot = self._nan_snapshot, None
        if getattr(trainer, "_dist", None) is not None:
            # The re-run's backward would wait for the other ranks' gradients, which never come.
            info["error"] = "not re-run: in a distributed job the other ranks do not take part"
            self.record["nan"] = info
            return
        restore = None
        if snapshot is not None and not trainer.skip_optimizer_step:
            restore = [p.array.copy() for _, p in self._params]
            for (_, p), w in zip(self._params, snapshot):
                p.array[...] = w
        try:
            info.update(locate_non_finite(trainer, model, batch, batch_idx))
        except Exception as exc:  # the diagnosis must never hide the run's own outcome
            info["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            if restore is not None:
                for (_, p), w in zip(self._params, restore):
                    p.array[...] = w
        self.record["nan"] = info


def _batch_finite(batch):
    parts = batch if isinstance(batch, (list, tuple)) else [batch]
    for part in parts:
        arr = getattr(part, "array", part)
        if isinstance(arr, np.ndarray) and arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            return False
    return True


# ============================================================================ NaN localisation
def _label_graph(fn, name, labels):
    """Label the autograd nodes behind ``fn`` that no inner module labelled yet with module ``name``."""
    stack = [fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in labels or not hasattr(node, "edges"):
            continue
        labels[id(node)] = (name, node)
        for edge in node.edges:
            if edge is not None and hasattr(edge[0], "edges"):
                stack.append(edge[0])


def _node_from_traceback(tb):
    node = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "run" and frame.f_code.co_filename.endswith("anomaly.py"):
            node = frame.f_locals.get("node", node)
        tb = tb.tb_next
    return node


def locate_non_finite(trainer, model, batch, batch_idx):
    """Run one training batch again under anomaly mode; returns where the first NaN/Inf appeared.

    The result has ``phase`` (``"forward"``, ``"backward"`` or None when the batch gave a finite loss
    this time), ``op`` (the op's name), ``module`` (the innermost module running it, by its name in
    ``named_modules``; ``""`` is the model itself, None is outside the model, e.g. the loss) and
    ``module_type``, and ``message`` (anomaly mode's error). Gradients are cleared afterwards.
    """
    from ..autograd import detect_anomaly
    from ..autograd.tensor import Tensor
    from .seed import get_rng_state, set_rng_state

    modules = list(model.named_modules())
    types = {n: type(m).__name__ for n, m in modules}
    running = []
    labels = {}
    handles = []

    def pre(name):
        def hook(module, args):
            running.append(name)
        return hook

    def post(name):
        def hook(module, args, out):
            if running and running[-1] == name:
                running.pop()
            for o in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(o, Tensor) and o.grad_fn is not None:
                    _label_graph(o.grad_fn, name, labels)
        return hook

    for name, m in modules:
        handles.append(m.register_forward_pre_hook(pre(name)))
        handles.append(m.register_forward_hook(post(name)))
    rng = get_rng_state()
    result = {"phase": None, "op": None, "module": None, "module_type": None, "message": None}
    params = [p for _, p in trainer.named_parameters]
    try:
        with detect_anomaly():
            try:
                out = trainer.training_step(model, batch, batch_idx)
            except RuntimeError as exc:
                if not str(exc).startswith("anomaly detected"):
                    raise
                result.update(phase="forward", message=str(exc), op=_op_name(str(exc)))
                where = running[-1] if running else None
                result["module"], result["module_type"] = where, types.get(where)
                return result
            loss = out.get("loss") if isinstance(out, dict) else out
            if not isinstance(loss, Tensor):
                return result
            result["rerun_loss"] = float(loss.array.reshape(-1)[0])
            try:
                loss.backward()
            except RuntimeError as exc:
                if not str(exc).startswith("anomaly detected"):
                    raise
                result.update(phase="backward", message=str(exc), op=_op_name(str(exc)))
                node = _node_from_traceback(exc.__traceback__)
                where = labels.get(id(node), (None,))[0] if node is not None else None
                result["module"], result["module_type"] = where, types.get(where)
    finally:
        for h in handles:
            h.remove()
        for p in params:
            p.grad = None
        set_rng_state(rng)
    return result


def _op_name(message):
    # "anomaly detected: Log forward produced ..." / "anomaly detected: Log backward returned ..."
    words = message.split(":", 1)[-1].split()
    return words[0] if words else None


# ============================================================================ diagnosis
def _median(values):
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(vals)) if vals else float("nan")


def _chunks(losses, n=20):
    """Medians of ``n`` consecutive stretches of the per-step losses (robust to batch noise)."""
    arr = np.asarray(losses, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return np.zeros(0)
    n = max(1, min(n, arr.size // 3 or 1))
    return np.array([np.median(c) for c in np.array_split(arr, n)])


def _weight_layers(record):
    """The layers with a matrix or kernel, in the model's order (those gradient flow compares)."""
    samples = record["samples"]
    if not samples:
        return []
    types = record.get("layer_types", {})
    skip = ("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "Embedding", "RMSNorm")
    out = []
    for layer in record["layers"]:
        if any(s in types.get(layer, "") for s in skip):
            continue
        if layer in samples[0]["size"] and samples[0]["size"][layer] > 1:
            out.append(layer)
    return out


def _layer_rms(record, layers):
    """Median gradient RMS of each layer over the samples (0 where it never had a gradient)."""
    samples = record["samples"]
    return {layer: _median([s["grad_norm"][layer] / math.sqrt(s["size"][layer]) for s in samples
                            if layer in s["grad_norm"]]) for layer in layers}


def diagnose(record, thresholds=None, lr_finder=None):
    """The findings (a list of ``Finding``, most fundamental first) for a doctor ``record``.

    ``record`` is ``Doctor.record`` or what ``load_record`` / ``record_from_metrics`` return;
    ``thresholds`` overrides ``DEFAULT_THRESHOLDS``; ``lr_finder`` is an optional ``LRFinderResult``
    whose suggestion the learning-rate advice quotes.
    """
    th = _check_thresholds(thresholds)
    found = {}
    checks = [_check_nan, _check_not_learning, _check_exploding, _check_vanishing, _check_learning_rate,
              _check_saturation, _check_dead_relu, _check_activation_growth, _check_overfitting, _check_plateau,
              _check_underfitting]
    if record.get("manual_optimization"):
        # A step that optimizes by itself (GANs, several optimizers) returns a loss whose curve says little.
        checks = [c for c in checks if c not in (_check_learning_rate, _check_plateau, _check_underfitting)]
    for check in checks:
        finding = check(record, th, found, lr_finder)
        if finding is not None:
            found[finding.kind] = finding
    if "exploding_gradients" in found and "learning_rate" in found:
        # Gradients that are huge from the first step come from the initialisation; growing ones from the rate.
        if found["exploding_gradients"].data.get("from_start"):
            found["exploding_gradients"].evidence.append(
                "Also seen (a consequence): " + found.pop("learning_rate").summary)
        else:
            found["learning_rate"].evidence.append(
                "Also seen (a consequence): " + found.pop("exploding_gradients").summary)
    return _resolve(found)


def _resolve(found):
    """Keep the root causes: a symptom of a finding already made goes into its evidence instead."""
    absorbs = {
        "nan": ("exploding_gradients", "vanishing_gradients", "not_learning", "dead_relu", "saturation", "plateau",
                "underfitting", "overfitting", "activation_growth"),
        "not_learning": ("dead_relu", "plateau", "underfitting"),
        "exploding_gradients": ("vanishing_gradients", "not_learning", "dead_relu", "activation_growth", "saturation",
                                "plateau", "underfitting"),
        "vanishing_gradients": ("not_learning", "plateau", "underfitting", "saturation"),
        "learning_rate": ("vanishing_gradients", "not_learning", "plateau", "underfitting", "dead_relu",
                          "activation_growth", "saturation", "overfitting"),
        "saturation": ("plateau", "underfitting"),
        "dead_relu": ("plateau", "underfitting"),
    }
    for cause, symptoms in absorbs.items():
        if cause not in found:
            continue
        for s in symptoms:
            if s in found:
                f = found.pop(s)
                found[cause].evidence.append(f"Also seen (a consequence): {f.summary}")
    return sorted(found.values(), key=lambda f: _ORDER.get(f.kind, 99))


def _lr_advice(record, lr_finder, factor=10.0):
    lrs = [s.get("lr") for s in record["samples"] if s.get("lr") is not None]
    lrs += [v for v in record["epochs"].get("lr", []) if math.isfinite(v)]
    lr = lrs[0] if lrs else None
    suggestion = getattr(lr_finder, "suggestion", None) or (record.get("lr_finder") or {}).get("suggestion")
    if suggestion:
        return (f"Lower the learning rate to ~{_fmt(suggestion)} (the learning-rate finder's suggestion)"
                + (f"; it is {_fmt(lr)} now." if lr else "."))
    if lr:
        return (f"Lower the learning rate to ~{_fmt(lr / factor)} ({factor:g}x below the {_fmt(lr)} in use), or "
                f"run the learning-rate finder (`somanet.train.lr_find`, `somanet lr-find`) and use its suggestion.")
    return ("Lower the learning rate about 10x, or run the learning-rate finder (`somanet.train.lr_find`) and "
            "use its suggestion.")


def _clip_advice(record):
    norms = [s["total_grad_norm"] for s in record["samples"] if math.isfinite(s["total_grad_norm"])]
    if not norms:
        return "Add gradient clipping: `Trainer(gradient_clip_val=1.0)`."
    early = norms[: max(1, len(norms) // 4)]
    value = float(np.median(early))
    return (f"Add gradient clipping at about the measured typical norm: `Trainer(gradient_clip_val={_fmt(value)})` "
            f"(median total gradient norm of the first measured steps).")


def _check_nan(record, th, found, lr_finder):
    nan = record.get("nan")
    losses = record["losses"]
    first_bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
    if nan is None and first_bad is None:
        epoch_loss = record["epochs"].get("loss", [])
        bad = next((i for i, v in enumerate(epoch_loss) if not math.isfinite(v)), None)
        if bad is None:
            return None
        nan = {"epoch": bad, "step": None, "batch": None, "loss": epoch_loss[bad], "phase": None}
    if nan is None:
        nan = {"epoch": None, "step": record["loss_steps"][first_bad], "batch": None, "loss": losses[first_bad],
               "phase": None}
    op, module, mtype, phase = nan.get("op"), nan.get("module"), nan.get("module_type"), nan.get("phase")
    where = []
    if nan.get("step") is not None:
        where.append(f"optimizer step {nan['step'] + 1}")
    if nan.get("epoch") is not None:
        where.append(f"epoch {nan['epoch'] + 1}")
    if nan.get("batch") is not None:
        where.append(f"batch {nan['batch'] + 1} of the epoch")
    at = ", ".join(where) or "an unknown step"
    loss_value = _float(nan["loss"]) if nan.get("loss") is not None else float("nan")
    became = (f"The loss became {_fmt(loss_value)}" if not math.isfinite(loss_value) else
              f"A gradient became NaN/Inf (the loss was {_fmt(loss_value)})")
    if op:
        layer = ("outside the model (in the loss or the training step)" if module is None else
                 "in the model itself (its own forward)" if module == "" else f"in layer '{module}' ({mtype})")
        summary = f"{became} at {at}: the first bad value came from {op} ({phase} pass) {layer}."
    else:
        summary = f"{became} at {at}."
    evidence = [f"Loss at the bad step: {_fmt(loss_value)}."]
    if nan.get("input_finite") is False:
        evidence.append("The input batch itself contains NaN or Inf values.")
    if nan.get("message"):
        evidence.append("Anomaly mode: " + nan["message"].splitlines()[0])
    if nan.get("error"):
        evidence.append(f"Re-running the batch under anomaly mode failed: {nan['error']}")
    elif nan.get("step") is not None and not op and "rerun_loss" in nan:
        evidence.append(f"Re-running the batch under anomaly mode gave a finite loss "
                        f"({_fmt(nan['rerun_loss'])}): the failure depends on randomness (dropout) or on state.")
    finite = [v for v in losses if math.isfinite(v)]
    diverged = len(finite) >= 6 and _median(finite[-3:]) > 10 * _median(finite[:3])
    if diverged:
        evidence.append(f"Before it, the loss grew from {_fmt(_median(finite[:3]))} to {_fmt(_median(finite[-3:]))}: "
                        f"the run diverged.")
    advice = []
    if nan.get("input_finite") is False:
        advice.append("Clean the data: drop or impute the NaN/Inf values before training.")
    advice += _op_advice(op, phase)
    if diverged or not op:
        advice.append(_lr_advice(record, lr_finder))
        advice.append(_clip_advice(record))
    advice.append("Use `somanet.autograd.detect_anomaly()` around a step to see the full forward traceback.")
    if diverged and nan.get("input_finite") is not False:
        # The NaN is where a diverging run ended, not its cause: the learning rate is.
        summary = (f"The loss diverged ({_fmt(_median(finite[:3]))} -> {_fmt(_median(finite[-3:]))}) and became "
                   f"{_fmt(_float(nan['loss']))} at {at}" + (f" ({op} in the {phase} pass)." if op else "."))
        advice = [_lr_advice(record, lr_finder), _clip_advice(record),
                  "Or add a warm-up and a decaying schedule (`OneCycleLR`, `CosineAnnealingLR`)."]
        return Finding("learning_rate", "Learning rate too high", summary, evidence, advice,
                       data=dict(nan, diverged=True))
    return Finding("nan", "NaN/Inf in training", summary, evidence, advice, data=nan)


def _op_advice(op, phase):
    op = (op or "").lower()
    if op in ("log", "log2", "log10", "log1p"):
        return ["Keep the logarithm's input positive: `x.clamp(min=1e-7).log()`; for probabilities use "
                "`log_softmax` / `F.logsigmoid`, or a loss that takes logits (`CrossEntropyLoss`, "
                "`BCEWithLogitsLoss`)."]
    if op in ("div", "truediv", "reciprocal"):
        return ["Keep the denominator away from zero: add an epsilon (`x / (d + 1e-8)`) or clamp it."]
    if op in ("sqrt", "rsqrt", "pow"):
        return ["Clamp the input of the root/power (`x.clamp(min=1e-12).sqrt()`): its gradient is infinite at 0."]
    if op in ("exp", "expm1"):
        return ["Exp overflowed: subtract the maximum first (`logsumexp`, `softmax`), or lower the learning rate."]
    if op:
        return [f"Check the inputs of {op} in that layer for values outside its domain."]
    return []


def _check_not_learning(record, th, found, lr_finder):
    samples = [s for s in record["samples"] if not s.get("skipped")]
    if not samples:
        return None
    stuck = []
    rms = {layer: _median([s["grad_norm"].get(layer, 0.0) / math.sqrt(s["size"][layer]) for s in samples
                           if layer in s["size"]]) for layer in record["layers"]}
    top = max([v for v in rms.values() if math.isfinite(v)], default=0.0)
    for layer in record["layers"]:
        ratios = [s["update_ratio"].get(layer) for s in samples if layer in s["update_ratio"]]
        grads = [s["grad_norm"].get(layer, 0.0) for s in samples]
        if not ratios:
            continue
        med = _median(ratios)
        # A gradient orders of magnitude below the others' is vanishing, which its own check reports.
        tiny = rms.get(layer, 0.0) < 1e-3 * top
        if (med < th["update_ratio_min"] and not tiny) or max(grads) == 0.0:
            stuck.append((layer, med, max(grads), _median([s["weight_norm"][layer] for s in samples])))
    if not stuck:
        return None
    zero_w = [layer for layer, _, _, wn in stuck if wn == 0.0]
    zero_g = [layer for layer, _, g, _ in stuck if g == 0.0]
    names = ", ".join(f"'{s[0]}'" for s in stuck)
    summary = f"{len(stuck)} of {len(record['layers'])} layers do not learn ({names})."
    evidence = [f"'{layer}': median update/weight ratio {_fmt(r)} (healthy: around 1e-3), largest gradient norm "
                f"{_fmt(g)}, weight norm {_fmt(w)}." for layer, r, g, w in stuck[:8]]
    advice = []
    if zero_w or zero_g:
        advice.append("Weights initialised to zero (or to the same value) get no gradient or identical ones: "
                      "initialise with `nn.init.kaiming_uniform_` (ReLU) or `nn.init.xavier_uniform_` "
                      "(tanh/sigmoid); keep zeros for biases only.")
    advice.append("Check that these parameters are given to the optimizer and not frozen (`requires_grad`).")
    if not (zero_w or zero_g):
        advice.append("Raise the learning rate (the updates are tiny relative to the weights).")
    return Finding("not_learning", "Layers not learning", summary, evidence, advice,
                   data={"layers": [s[0] for s in stuck], "zero_weights": zero_w, "zero_gradients": zero_g})


def _finite_samples(record):
    """The measured steps whose loss was finite (a NaN step's gradients say nothing about their scale)."""
    return [s for s in record["samples"] if (s.get("loss") is None or math.isfinite(_float(s["loss"])))
            and math.isfinite(_float(s["total_grad_norm"]))]


def _check_exploding(record, th, found, lr_finder):
    samples = _finite_samples(record)
    norms = [s["total_grad_norm"] for s in samples]
    if not norms:
        return None
    finite = [n for n in norms if math.isfinite(n)]
    peak = max(finite) if finite else float("inf")
    layers = _weight_layers(record)
    rms = _layer_rms(dict(record, samples=samples), layers)
    ratio = None
    if len(layers) >= 3 and rms[layers[-1]] > 0:
        ratio = rms[layers[0]] / rms[layers[-1]]
    big = peak > th["exploding_grad_norm"] or len(finite) < len(norms)
    toward_input = ratio is not None and ratio > th["exploding_ratio"]
    if not (big or toward_input):
        return None
    evidence = [f"Largest total gradient norm: {_fmt(peak)} (threshold {_fmt(th['exploding_grad_norm'])}); median "
                f"{_fmt(_median(norms))} over {len(norms)} measured steps."]
    if ratio is not None:
        evidence.append(f"Gradient RMS of the first layer '{layers[0]}' / the last '{layers[-1]}': {_fmt(ratio)}.")
    acts = _activation_rms(record)
    if acts:
        name, v = max(acts.items(), key=lambda kv: kv[1])
        evidence.append(f"Largest layer output RMS: {_fmt(v)} ('{name}').")
    first = samples[0]["total_grad_norm"] if samples else float("nan")
    from_start = not math.isfinite(first) or first > th["exploding_grad_norm"]
    if from_start:
        evidence.insert(0, f"Already at the first measured step (before any update) the total gradient norm is "
                           f"{_fmt(first)}: the initial weights are too large.")
    summary = f"Gradients explode: the total gradient norm reaches {_fmt(peak)}."
    init = ("Initialise the weights at the right scale: `nn.init.kaiming_uniform_` (ReLU) or "
            "`nn.init.xavier_uniform_` (tanh/sigmoid) instead of large values.")
    norm = "Add normalisation layers (`nn.BatchNorm1d`/`nn.LayerNorm`) between the layers."
    if from_start:
        # Every measured norm is inflated by the initialisation: none of them is a sensible clip value.
        advice = [init, norm, "Until then, clip gradients: `Trainer(gradient_clip_val=1.0)` is a common start."]
    else:
        advice = [_clip_advice(record), init, norm, _lr_advice(record, lr_finder)]
    return Finding("exploding_gradients", "Exploding gradients", summary, evidence, advice,
                   data={"peak_grad_norm": peak, "first_last_ratio": ratio, "layer_grad_rms": rms,
                         "from_start": from_start})


def _activation_rms(record):
    last = {}
    for s in _finite_samples(record):
        for name, st in (s.get("activations") or {}).items():
            last[name] = st["rms"]
    return last


def _check_vanishing(record, th, found, lr_finder):
    layers = _weight_layers(record)
    if len(layers) < 3:
        return None
    rms = _layer_rms(record, layers)
    vals = [rms[layer] for layer in layers]
    if not all(v > 0 and math.isfinite(v) for v in vals):
        return None
    ratio = vals[0] / vals[-1]
    if ratio >= th["vanishing_ratio"]:
        return None
    logs = np.log10(vals)
    falling = float(np.mean(np.diff(logs) > 0))  # share of layers whose gradient is larger than the one before
    summary = (f"Gradients vanish toward the input: the first layer's gradient is {_fmt(ratio)} times the last "
               f"layer's.")
    evidence = [f"Median gradient RMS, last layer '{layers[-1]}': {_fmt(vals[-1])}; first layer '{layers[0]}': "
                f"{_fmt(vals[0])} ({len(layers)} layers; threshold ratio {_fmt(th['vanishing_ratio'])}).",
                f"Going from the output toward the input, the gradient shrinks at {falling:.0%} of the layers."]
    sat = [st for s in record["samples"] for st in (s.get("activations") or {}).values() if "saturated_fraction" in st]
    acts = {st["type"] for s in record["samples"] for st in (s.get("activations") or {}).values()}
    advice = []
    if acts & set(_SATURATING) or sat:
        advice.append("Replace sigmoid/tanh hidden activations by ReLU/GELU (their derivative is at most 0.25/1 "
                      "and multiplies at every layer).")
    advice += ["Initialise with `nn.init.kaiming_uniform_` (ReLU) or `nn.init.xavier_uniform_` (tanh/sigmoid).",
               "Add normalisation (`nn.BatchNorm1d`/`nn.LayerNorm`) and residual connections (x + f(x)), or use "
               "fewer layers."]
    return Finding("vanishing_gradients", "Vanishing gradients", summary, evidence, advice,
                   data={"layers": layers, "grad_rms": vals, "ratio": ratio})


def _check_learning_rate(record, th, found, lr_finder):
    if "learning_rate" in found:
        return found["learning_rate"]
    c = _chunks(record["losses"])
    if c.size < 6:
        return None
    start, low, end = float(c[0]), float(c.min()), float(c[-1])
    diverged = end > th["divergence_factor"] * low and end > start
    ep = [x for x in record["epochs"].get("loss", []) if math.isfinite(x)]
    if len(ep) >= 3 and ep[-1] > th["divergence_factor"] * min(ep) and ep[-1] > ep[0]:
        diverged = True  # batches blowing up now and then raise the epoch means, not the medians
        end, low = ep[-1], min(ep)
    # A spike: a stretch at least twice the lowest loss so far and above it by 10% of the initial loss.
    running = np.minimum.accumulate(c)
    spikes = (c[2:] > 2 * running[1:-1]) & (c[2:] - running[1:-1] > 0.1 * abs(start))
    jump_share = float(spikes.mean())
    oscillating = jump_share >= th["oscillation_jumps"]
    if not (diverged or oscillating):
        return None
    evidence = [f"Training loss (median of {c.size} stretches of steps): starts at {_fmt(c[0])}, lowest "
                f"{_fmt(c.min())}, ends at {_fmt(c[-1])}.",
                f"{int(spikes.sum())} of {spikes.size} stretches jumped back above twice the lowest loss so far "
                f"(threshold share {th['oscillation_jumps']:.0%})."]
    if len(ep) >= 2:
        evidence.append("Training loss per epoch: " + ", ".join(_fmt(x) for x in ep[:12])
                        + (", ..." if len(ep) > 12 else "") + ".")
    if diverged:
        summary = f"The loss diverges: it ends at {_fmt(end)}, {_fmt(end / max(low, 1e-30))}x its lowest value."
    else:
        summary = (f"The loss oscillates instead of settling: {jump_share:.0%} of the stretches of steps jump back "
                   f"above twice the lowest loss so far.")
    advice = [_lr_advice(record, lr_finder),
              "Or add a warm-up and a decaying schedule (`OneCycleLR`, `CosineAnnealingLR`).",
              _clip_advice(record)]
    return Finding("learning_rate", "Learning rate too high", summary, evidence, advice,
                   data={"chunks": c.tolist(), "diverged": diverged, "oscillating": oscillating})


def _check_saturation(record, th, found, lr_finder):
    per = {}
    for s in record["samples"]:
        for name, st in (s.get("activations") or {}).items():
            if "saturated_fraction" in st:
                per.setdefault(name, []).append(st["saturated_fraction"])
    bad = {k: _median(v) for k, v in per.items() if _median(v) > th["saturation_fraction"]}
    if not bad:
        return None
    summary = f"{len(bad)} of {len(per)} sigmoid/tanh layers are saturated (outputs in the flat tails)."
    evidence = [f"'{k}': {v:.0%} of the outputs saturated (median over measured steps)." for k, v in bad.items()]
    advice = ["Scale the initial weights down: `nn.init.xavier_uniform_` for tanh/sigmoid layers.",
              "Normalise the inputs and add `nn.BatchNorm1d`/`nn.LayerNorm` before the activation.",
              "Or use ReLU/GELU hidden activations, which do not saturate for positive inputs."]
    return Finding("saturation", "Saturated activations", summary, evidence, advice, data={"layers": bad})


def _check_dead_relu(record, th, found, lr_finder):
    acts = {k: v for k, v in record.get("activations", {}).items() if "dead_fraction" in v}
    bad = {k: v for k, v in acts.items() if v["dead_fraction"] > th["dead_relu_fraction"]}
    if not bad:
        return None
    summary = f"Dead ReLUs: {len(bad)} of {len(acts)} ReLU layers have most units never active."
    evidence = [f"'{k}': {v['dead_fraction']:.0%} of {v['units']} units never active over the last {v['batches']} "
                f"measured batches." for k, v in bad.items()]
    advice = ["Check what feeds these ReLUs: strongly negative biases or pre-activations (unnormalised inputs, "
              "a bad initialisation) leave units that never fire; initialise biases at 0 and normalise the inputs.",
              "Use `nn.LeakyReLU`/`nn.GELU`, He initialisation (`nn.init.kaiming_uniform_`), and normalisation "
              "before the ReLU.",
              "If the units die during training (a large step can push them where they never fire again), "
              + _lr_advice(record, lr_finder)[0].lower() + _lr_advice(record, lr_finder)[1:]]
    return Finding("dead_relu", "Dead ReLUs", summary, evidence, advice, data={"layers": bad})


def _check_activation_growth(record, th, found, lr_finder):
    series = {}
    for s in record["samples"]:
        for name, st in (s.get("activations") or {}).items():
            series.setdefault(name, []).append(st["rms"])
    bad = {}
    for name, vals in series.items():
        if len(vals) < 3 or not vals[0] > 0:
            continue
        growth = vals[-1] / vals[0]
        if growth > th["activation_growth"] and vals[-1] > th["activation_rms_max"]:
            bad[name] = (vals[0], vals[-1], growth)
    if not bad:
        return None
    summary = f"Activations grow without bound in {len(bad)} layer(s)."
    evidence = [f"'{k}': output RMS {_fmt(a)} -> {_fmt(b)} ({_fmt(g)}x)." for k, (a, b, g) in bad.items()]
    advice = ["Add normalisation (`nn.LayerNorm`/`nn.BatchNorm1d`) and weight decay (`AdamW(weight_decay=0.01)`).",
              _lr_advice(record, lr_finder)]
    return Finding("activation_growth", "Growing activations", summary, evidence, advice,
                   data={k: list(v) for k, v in bad.items()})


def _check_overfitting(record, th, found, lr_finder):
    ep = record["epochs"]
    val, train = ep.get("val_loss"), ep.get("loss")
    if not val or not train or len(val) < 3:
        return None
    v = np.asarray(val, dtype=np.float64)
    t = np.asarray(train, dtype=np.float64)
    if len(v) != len(t):
        return None
    # Epochs without validation (validated every few epochs) or with a NaN loss say nothing here.
    keep = np.isfinite(v) & np.isfinite(t)
    epochs = np.flatnonzero(keep)
    v, t = v[keep], t[keep]
    if len(v) < 3:
        return None
    best_i = int(np.argmin(v))
    best = int(epochs[best_i])
    after = int(epochs[-1]) - best
    if after < th["overfit_patience"] or v[-1] < v[best_i] * (1 + th["overfit_rise"]):
        return None
    if not t[-1] < t[best_i]:
        return None
    summary = (f"Overfitting from epoch {best + 2}: validation loss rose from {_fmt(v[best_i])} to {_fmt(v[-1])} "
               f"while the training loss fell from {_fmt(t[best_i])} to {_fmt(t[-1])}.")
    evidence = [f"Best validation loss {_fmt(v[best_i])} at epoch {best + 1}; {after} epochs later it is "
                f"{_fmt(v[-1])} (+{(v[-1] / v[best_i] - 1):.0%}).",
                f"Gap between validation and training loss at the end: {_fmt(v[-1] - t[-1])}."]
    for key in ("accuracy", "val_accuracy"):
        if key in ep and ep[key]:
            evidence.append(f"{key} at the end: {_fmt(ep[key][-1])}.")
    advice = [f"Stop early: `EarlyStopping('val_loss', patience={max(1, int(th['overfit_patience']))}, "
              f"restore_best_weights=True)` would have kept epoch {best + 1}.",
              "Regularise: `nn.Dropout`, weight decay (`AdamW(weight_decay=0.01)`), data augmentation, or more data.",
              "Or use a smaller model."]
    return Finding("overfitting", "Overfitting", summary, evidence, advice,
                   data={"best_epoch": best, "val_loss": v.tolist(), "loss": t.tolist()})


def _accurate(record, level=0.9):
    """Whether a training accuracy is logged and ends at ``level`` or more (the model fits its data)."""
    for key, values in record["epochs"].items():
        if key.endswith("accuracy") and not key.startswith("val_") and values and values[-1] >= level:
            return True
    return False


def _check_plateau(record, th, found, lr_finder):
    t = [x for x in record["epochs"].get("loss", []) if math.isfinite(x)]
    k = int(th["plateau_epochs"])
    if len(t) < k + 2:
        return None
    before = min(t[:-k])
    recent = min(t[-k:])
    improvement = (before - recent) / max(abs(before), 1e-12)
    if improvement > th["plateau_improvement"]:
        return None
    if t[-1] < 0.5 * t[0] or t[-1] < 1e-3 or _accurate(record):
        return None  # converged (label smoothing or noise keep some losses high), not stuck
    summary = f"The training loss has stopped improving for {k} epochs at {_fmt(recent)}."
    evidence = [f"Best training loss before the last {k} epochs: {_fmt(before)}; since: {_fmt(recent)} "
                f"({improvement:+.2%})."]
    advice = ["Reduce the learning rate on plateaus (`ReduceLROnPlateau`) or use a decaying schedule.",
              "If the loss is still high, the model may be too small for the task: add capacity."]
    return Finding("plateau", "Loss plateau", summary, evidence, advice, data={"loss": t})


def _check_underfitting(record, th, found, lr_finder):
    c = _chunks(record["losses"])
    t = [x for x in record["epochs"].get("loss", []) if math.isfinite(x)]
    if c.size >= 6 and len(t) >= 3:
        start, end = float(c[0]), float(c[-1])
    else:
        return None
    improvement = (start - end) / max(abs(start), 1e-12)
    if improvement >= th["underfit_improvement"] or end < 1e-3 or _accurate(record):
        return None
    summary = f"Underfitting: the training loss barely fell ({_fmt(start)} -> {_fmt(end)}, {improvement:.1%})."
    evidence = [f"Training loss at the start {_fmt(start)}, at the end {_fmt(end)} over {len(t)} epochs."]
    advice = ["Train longer or with a higher learning rate (check with the learning-rate finder).",
              "Add capacity (wider/deeper layers) or better features; check the labels match the inputs."]
    return Finding("underfitting", "Underfitting", summary, evidence, advice, data={"start": start, "end": end})


# ============================================================================ records
def save_record(record, path):
    """Write a doctor record (the raw measurements) as JSON, atomically."""
    atomic_write_text(path, json.dumps(_jsonable(record), indent=None, separators=(",", ":")) + "\n")


def _floats(values):
    return [_float(v) for v in values]


def load_record(path):
    """Read a ``doctor.json`` written by ``Doctor``; returns the record ``diagnose`` takes."""
    with open(path, encoding="utf-8") as f:
        try:
            record = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not a doctor record (invalid JSON: {exc})") from None
    if not isinstance(record, dict) or "samples" not in record or "losses" not in record:
        raise ValueError(f"{path} is not a doctor record (no 'samples' and 'losses')")
    try:
        return _normalise(record)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path} is not a valid doctor record ({type(exc).__name__}: {exc})") from None


def _normalise(record):
    """Numbers back from JSON (where non-finite values are strings)."""
    record["losses"] = _floats(record["losses"])
    record["epochs"] = {k: _floats(v) for k, v in record.get("epochs", {}).items()}
    for s in record["samples"]:
        s["total_grad_norm"] = _float(s["total_grad_norm"])
        for key in ("grad_norm", "weight_norm", "update_ratio", "update_norm"):
            s[key] = {k: _float(v) for k, v in s.get(key, {}).items()}
        for stats in (s.get("activations") or {}).values():
            stats["rms"] = _float(stats["rms"])
    return record


def record_from_metrics(path):
    """A record with only the per-epoch logs of a ``metrics.csv`` (for runs without ``doctor.json``)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    epochs = {}
    for row in rows:
        for key, value in row.items():
            if key == "epoch" or key is None:
                continue
            try:
                epochs.setdefault(key, []).append(float(value) if value != "" else float("nan"))
            except ValueError:
                continue
    return {"version": 1, "every_n_steps": None, "layers": [], "layer_types": {}, "loss_steps": [], "losses": [],
            "samples": [], "activations": {}, "epochs": epochs, "nan": None, "stop_reason": None,
            "steps_per_epoch": None, "from_metrics": True}


# ============================================================================ the report
def brief(findings, report_path=None):
    """The few lines printed at the end of ``fit``."""
    if not findings:
        return "doctor: no problems found" + (f" ({report_path})" if report_path else "")
    lines = [f"doctor: {len(findings)} problem(s) found" + (f" (details: {report_path})" if report_path else "")]
    for f in findings:
        lines.append(f"  - {f.title}: {f.summary}")
        if f.advice:
            lines.append(f"    fix: {f.advice[0]}")
    return "\n".join(lines)


def render_report(findings, record=None):
    """The Markdown report for ``findings``."""
    lines = ["# Training doctor", ""]
    if record is not None:
        n = len(record.get("losses", []))
        src = ("per-epoch logs only (metrics.csv)" if record.get("from_metrics") else
               f"{n} step(s), {len(record.get('samples', []))} measured (every {record.get('every_n_steps')} steps)")
        lines += [f"Run: {src}; {len(next(iter(record['epochs'].values()), []))} epoch(s)." if record["epochs"]
                  else f"Run: {src}.", ""]
        if record.get("stop_reason"):
            lines += [f"Stopped: {record['stop_reason']}", ""]
    if not findings:
        lines += ["No problems found: gradients flow, layers learn, activations are healthy and the loss curve "
                  "looks normal.", ""]
        return "\n".join(lines)
    lines += [f"{len(findings)} problem(s) found.", ""]
    for i, f in enumerate(findings, 1):
        lines += [f"## {i}. {f.title}", "", f.summary, "", "**Evidence**", ""]
        lines += [f"- {e}" for e in f.evidence]
        if f.plot:
            lines += ["", f"![{f.title}]({f.plot})"]
        lines += ["", "**Advice**", ""]
        lines += [f"- {a}" for a in f.advice]
        lines.append("")
    return "\n".join(lines)


def write_report(findings, run_dir, record=None, plots=True):
    """Write ``doctor.md`` (and its plots, when matplotlib is there) into ``run_dir``; returns its path."""
    if plots and findings and record is not None:
        try:
            for f in findings:
                f.plot = _plot_finding(f, record, run_dir)
        except ImportError as exc:
            findings[0].evidence.append(f"(plots skipped: {exc})")
    path = os.path.join(run_dir, "doctor.md")
    atomic_write_text(path, render_report(findings, record))
    return path


def _plot_finding(finding, record, run_dir):
    from .plots import _figure, _save
    kind = finding.kind
    rel = os.path.join("plots", f"doctor_{kind}.png")
    path = os.path.join(run_dir, rel)
    if kind in ("vanishing_gradients", "exploding_gradients", "not_learning") and record["samples"]:
        layers = record["layers"] if kind == "not_learning" else _weight_layers(record) or record["layers"]
        fig = _figure(7, 3.6)
        ax = fig.add_subplot(1, 1, 1)
        key = "update_ratio" if kind == "not_learning" else "grad_norm"
        vals = []
        for layer in layers:
            xs = [s[key].get(layer, float("nan")) / (1.0 if key == "update_ratio" else math.sqrt(s["size"][layer]))
                  for s in record["samples"] if layer in s["size"]]
            vals.append(max(_median(xs), 1e-30) if _median(xs) == _median(xs) else 1e-30)
        ax.bar(range(len(layers)), vals, color="tab:red" if kind != "not_learning" else "tab:gray")
        ax.set_yscale("log")
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels(layers, rotation=60, fontsize=7)
        ax.set_ylabel("median update / weight" if key == "update_ratio" else "median gradient RMS")
        ax.set_xlabel("layer (input -> output)")
        ax.set_title(finding.title)
        ax.grid(alpha=0.3, axis="y")
        return _save(fig, path) and rel
    if kind in ("saturation", "dead_relu", "activation_growth"):
        fig = _figure(6, 3.5)
        ax = fig.add_subplot(1, 1, 1)
        names = list(finding.data.get("layers", finding.data))
        if kind == "dead_relu":
            vals = [record["activations"][n]["dead_fraction"] for n in names]
            ax.set_ylabel("units never active")
        elif kind == "saturation":
            vals = [finding.data["layers"][n] for n in names]
            ax.set_ylabel("outputs saturated")
        else:
            vals = [finding.data[n][1] for n in names]
            ax.set_ylabel("output RMS at the end")
            ax.set_yscale("log")
        ax.bar(range(len(names)), vals, color="tab:orange")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=45, fontsize=8)
        ax.set_title(finding.title)
        return _save(fig, path) and rel
    # Loss-curve findings and NaN: the loss per step and per epoch.
    fig = _figure(7, 3.6)
    ax = fig.add_subplot(1, 2, 1)
    losses = np.asarray(record["losses"], dtype=np.float64)
    if losses.size:
        ax.plot(np.arange(1, losses.size + 1), np.where(np.isfinite(losses), losses, np.nan), lw=0.8)
        finite = losses[np.isfinite(losses)]
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
            ax.set_yscale("log")
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            ax.axvline(bad[0] + 1, color="tab:red", ls="--", label="first NaN/Inf")
            ax.legend()
    ax.set_xlabel("step")
    ax.set_title("training loss per step")
    ax.grid(alpha=0.3)
    ax = fig.add_subplot(1, 2, 2)
    for key, style in (("loss", "-o"), ("val_loss", "--o")):
        vals = record["epochs"].get(key)
        if vals:
            ax.plot(np.arange(1, len(vals) + 1), vals, style, markersize=3, label=key)
    if kind == "overfitting":
        ax.axvline(finding.data["best_epoch"] + 1, color="tab:red", ls=":", label="best val_loss")
    ax.set_xlabel("epoch")
    ax.set_title("loss per epoch")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return _save(fig, path) and rel
