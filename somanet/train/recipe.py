"""Recipes: small declarative descriptions of a training run, and the run config they produce.

A ``Recipe`` names its parts instead of building them: the model (``{"name": "mlp", ...kwargs}``),
the data (``{"name": "digits", ...}``), the optimizer, the learning-rate schedule, the callbacks and
the fit settings. Resolving it, with a config file and command-line overrides on top, gives a plain
dict, the *run config*, that is saved with every run and is enough to rebuild the model and the data
later (``somanet evaluate RUN_DIR``).

Model and data names are turned into objects by the registries of the layer that knows the model zoo
(``somanet.cli.recipes``); optimizers, schedulers, losses and callbacks are built here.

A config file (TOML or YAML) has the same shape as the run config::

    recipe = "digits-mlp"
    epochs = 30
    [optimizer]
    name = "adamw"
    lr = 0.002
    [scheduler]
    name = "cosine"
"""
import copy
import dataclasses
import json
import os

__all__ = ["Recipe", "ConfigError", "load_config_file", "merge_config", "parse_override", "validate_config",
           "check_loss", "check_training_config", "build_optimizer", "build_scheduler", "build_callbacks",
           "CONFIG_KEYS"]


class ConfigError(ValueError):
    """A run config, config file or override is invalid; the message says which key and why."""


#: Top-level keys of a run config, with what each holds.
CONFIG_KEYS = {
    "recipe": "the recipe's name",
    "description": "one line saying what the recipe trains",
    "task": "'classification' or 'regression'",
    "model": "table: name = a registered model, plus its keyword arguments",
    "data": "table: name = a registered dataset, plus its options (data_dir, val_fraction, ...)",
    "optimizer": "table: name = sgd | adam | adamw | rmsprop | adagrad, lr, and its other arguments",
    "scheduler": "table or none: name = step | multistep | exponential | cosine | onecycle | plateau, "
                 "interval = epoch | step, and its arguments",
    "loss": "cross_entropy | mse | l1 | nll | bce_with_logits | ..., or a table: name plus the loss's arguments",
    "metrics": "list of metric names (accuracy, top5_accuracy, f1, ...)",
    "epochs": "number of epochs (int >= 1)",
    "batch_size": "samples per batch (int >= 1)",
    "seed": "the seed of the whole run (int >= 0)",
    "max_steps": "stop after this many optimizer steps (int), or none",
    "early_stopping": "table or none: monitor, patience, min_delta, mode, restore_best_weights",
    "checkpoint": "table: monitor, mode, save_top_k",
    "trainer": "table: accumulate_grad_batches, gradient_clip_val, gradient_clip_algorithm",
}
_TABLES = ("model", "data", "optimizer", "scheduler", "early_stopping", "checkpoint", "trainer")
_TRAINER_KEYS = ("accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named, declarative training setup; ``config()`` gives its run config as a dict.

    >>> Recipe("tiny", "a tiny MLP on digits", model={"name": "mlp", "hidden_sizes": [32]},
    ...        data={"name": "digits"}).config()["model"]
    {'name': 'mlp', 'hidden_sizes': [32]}
    """

    name: str
    description: str
    model: dict
    data: dict
    optimizer: dict = dataclasses.field(default_factory=lambda: {"name": "adam", "lr": 1e-3})
    scheduler: dict = None
    loss: object = "cross_entropy"
    metrics: tuple = ("accuracy",)
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0
    task: str = "classification"
    early_stopping: dict = None
    checkpoint: dict = None
    trainer: dict = None

    def config(self):
        """The run config: every field as JSON-friendly values (lists, dicts, numbers, strings)."""
        cfg = {"recipe": self.name, "description": self.description, "task": self.task,
               "model": copy.deepcopy(dict(self.model)), "data": copy.deepcopy(dict(self.data)),
               "optimizer": copy.deepcopy(dict(self.optimizer)),
               "scheduler": copy.deepcopy(dict(self.scheduler)) if self.scheduler else None,
               "loss": copy.deepcopy(self.loss), "metrics": list(self.metrics), "epochs": self.epochs,
               "batch_size": self.batch_size, "seed": self.seed, "max_steps": None,
               "early_stopping": copy.deepcopy(dict(self.early_stopping)) if self.early_stopping else None,
               "checkpoint": copy.deepcopy(dict(self.checkpoint)) if self.checkpoint else {},
               "trainer": copy.deepcopy(dict(self.trainer)) if self.trainer else {}}
        return json.loads(json.dumps(cfg))

    def resolve(self, *overrides):
        """The run config with each override dict merged on top in turn, then validated."""
        cfg = self.config()
        for o in overrides:
            cfg = merge_config(cfg, o)
        validate_config(cfg)
        return cfg


# --------------------------------------------------------------------------- config files and overrides
def load_config_file(path):
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) config file into a dict."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist" if not os.path.exists(path)
                          else f"config file {path} is not a file")
    ext = os.path.splitext(path)[1].lower()
    with open(path, "rb") as f:
        raw = f.read()
    if ext == ".toml":
        import tomllib
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    elif ext in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"reading {path} needs PyYAML: pip install 'somanet[yaml]' (or use a .toml "
                              f"file)") from None
        try:
            data = yaml.safe_load(raw.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if data is None:
            data = {}
    else:
        raise ConfigError(f"config file {path}: unknown format {ext or '(no extension)'!r}; use .toml, .yaml "
                          f"or .yml")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of settings at the top, got {type(data).__name__}")
    return data


def merge_config(base, override, where=""):
    """``base`` updated by ``override``, recursively for tables.

    A table whose ``name`` changes (another optimizer, another model) is replaced rather than merged,
    since the old arguments may not apply to the new one. Unknown top-level keys raise ``ConfigError``.
    """
    out = copy.deepcopy(base)
    for key, value in override.items():
        full = f"{where}{key}"
        if not where and key not in CONFIG_KEYS:
            raise ConfigError(f"unknown config key '{key}'; known keys: {', '.join(CONFIG_KEYS)}")
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            if "name" in value and value["name"] != out[key].get("name"):
                out[key] = copy.deepcopy(value)
            else:
                out[key] = merge_config(out[key], value, full + ".")
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text):
    """``"optimizer.lr=0.01"`` -> ``{"optimizer": {"lr": 0.01}}``; values are read as JSON when they
    parse (numbers, true/false, null, lists), else kept as strings."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like KEY=VALUE (e.g. optimizer.lr=0.01)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    lowered = raw.strip().lower()
    if lowered in ("none", "null"):
        value = None
    else:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
    out = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def _check_int(cfg, key, minimum, allow_none=False):
    v = cfg.get(key)
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(f"config '{key}' must be an int >= {minimum}{' or none' if allow_none else ''}, got {v!r}")


def validate_config(cfg):
    """Check the types of a run config's settings; raises ``ConfigError`` naming the key."""
    for key in cfg:
        if key not in CONFIG_KEYS:
            raise ConfigError(f"unknown config key '{key}'; known keys: {', '.join(CONFIG_KEYS)}")
    _check_int(cfg, "epochs", 1)
    _check_int(cfg, "batch_size", 1)
    _check_int(cfg, "seed", 0)
    _check_int(cfg, "max_steps", 1, allow_none=True)
    for key in ("model", "data", "optimizer"):
        table = cfg.get(key)
        if not isinstance(table, dict) or not isinstance(table.get("name"), str):
            raise ConfigError(f"config '{key}' must be a table with a 'name', got {table!r}")
    for key in _TABLES:
        if cfg.get(key) is not None and not isinstance(cfg[key], dict):
            raise ConfigError(f"config '{key}' must be a table (or none), got {type(cfg[key]).__name__}")
    sched = cfg.get("scheduler")
    if sched is not None and not isinstance(sched.get("name"), str):
        raise ConfigError(f"config 'scheduler' needs a 'name', got {sched!r}")
    lr = cfg["optimizer"].get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0):
        raise ConfigError(f"config 'optimizer.lr' must be a positive number, got {lr!r}")
    metrics = cfg.get("metrics")
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise ConfigError(f"config 'metrics' must be a list of metric names, got {metrics!r}")
    loss = cfg.get("loss")
    if not (isinstance(loss, str) or (isinstance(loss, dict) and isinstance(loss.get("name"), str))):
        raise ConfigError(f"config 'loss' must be a loss name or a table with a 'name', got {loss!r}")
    for key in (cfg.get("trainer") or {}):
        if key not in _TRAINER_KEYS:
            raise ConfigError(f"unknown config key 'trainer.{key}'; known: {', '.join(_TRAINER_KEYS)}")
    if cfg.get("task") not in ("classification", "regression"):
        raise ConfigError(f"config 'task' must be 'classification' or 'regression', got {cfg.get('task')!r}")
    return cfg


def check_loss(cfg):
    """Build the config's loss once (a name ``fit`` does not know, or arguments the loss does not
    take, raise ``ConfigError`` here instead of after training has started)."""
    from .trainer import get_loss
    try:
        get_loss(cfg.get("loss"))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config 'loss': {exc}") from None


def check_training_config(cfg, has_validation=True):
    """Check what ``fit`` would only find out once training has started, so that a bad config fails
    before a run directory is created: the loss and metrics are built, the trainer and checkpoint
    settings tried, and every monitored key (``checkpoint.monitor``, ``early_stopping.monitor``, a
    plateau scheduler's ``monitor``) must be one the run logs. Raises ``ConfigError`` naming the key.

    Args:
        cfg: a run config that ``validate_config`` accepts.
        has_validation: whether the run has validation data (which logs the ``val_`` keys).
    """
    from .callbacks import ModelCheckpoint
    from .metrics import get_metric
    from .trainer import Trainer
    check_loss(cfg)
    names = []
    for spec in cfg.get("metrics") or []:
        try:
            names.append(get_metric(spec).name)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config 'metrics': {exc}") from None
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"config 'metrics' names {', '.join(dup)} more than once (each metric logs under its name)")
    if "loss" in names or "lr" in names:
        raise ConfigError("config 'metrics' cannot hold 'loss' or 'lr': those are logged by the trainer itself")
    _call("trainer", Trainer, dict(cfg.get("trainer") or {}))
    checkpoint = _call("checkpoint", ModelCheckpoint, dict(cfg.get("checkpoint") or {}))
    logged = {"loss", "lr", *names}
    if has_validation:
        logged |= {"val_" + n for n in ["loss", *names]}
    default = "val_loss" if has_validation else "loss"
    monitors = []
    if checkpoint.monitor and checkpoint.save_top_k != 0:
        monitors.append(("checkpoint.monitor", checkpoint.monitor))
    if cfg.get("early_stopping"):
        monitors.append(("early_stopping.monitor", cfg["early_stopping"].get("monitor", "val_loss")))
    sched = cfg.get("scheduler")
    if sched and str(sched.get("name")).lower() == "plateau":
        monitors.append(("scheduler.monitor", sched.get("monitor") or default))
    for key, monitor in monitors:
        if monitor not in logged:
            hint = (" (the val_ keys need validation data)" if str(monitor).startswith("val_") and not has_validation
                    else "")
            raise ConfigError(f"config '{key}' is {monitor!r}, which this run does not log{hint}; it logs "
                              f"{', '.join(sorted(logged))} (a metric's key needs it in 'metrics')")
    return cfg


# --------------------------------------------------------------------------- builders
def _call(owner, factory, kwargs):
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"config '{owner}': {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"config '{owner}': {exc}") from None


def build_optimizer(spec, params):
    """An optimizer from ``{"name": "adam", "lr": ..., ...}``."""
    from .trainer import _OPTIMIZERS, get_optimizer
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    if spec["name"].lower() not in _OPTIMIZERS:
        raise ConfigError(f"config 'optimizer.name': unknown optimizer {spec['name']!r}; known: "
                          f"{', '.join(sorted(_OPTIMIZERS))}")
    if "betas" in kwargs and isinstance(kwargs["betas"], list):
        kwargs["betas"] = tuple(kwargs["betas"])
    return _call("optimizer", lambda **kw: get_optimizer(spec["name"], params, **kw), kwargs)


_SCHEDULERS = {"step": "StepLR", "multistep": "MultiStepLR", "exponential": "ExponentialLR",
               "cosine": "CosineAnnealingLR", "onecycle": "OneCycleLR", "plateau": "ReduceLROnPlateau",
               "linear": "LinearLR", "constant": "ConstantLR", "polynomial": "PolynomialLR"}


def build_scheduler(spec, optimizer, epochs, steps_per_epoch):
    """The ``fit(scheduler=...)`` dict for a schedule spec, or None.

    ``cosine`` defaults ``T_max`` to the run's length, and ``onecycle`` its ``max_lr`` to the
    optimizer's learning rate and ``total_steps`` to the run's steps (it steps per batch).
    """
    if not spec:
        return None
    from ..optim import lr_scheduler
    kwargs = {k: v for k, v in spec.items() if k not in ("name", "interval", "monitor", "frequency")}
    name = spec["name"].lower()
    if name not in _SCHEDULERS:
        raise ConfigError(f"config 'scheduler.name': unknown scheduler {spec['name']!r}; known: "
                          f"{', '.join(sorted(_SCHEDULERS))}")
    interval = spec.get("interval", "step" if name == "onecycle" else "epoch")
    if interval not in ("epoch", "step"):
        raise ConfigError(f"config 'scheduler.interval' must be 'epoch' or 'step', got {interval!r}")
    length = epochs if interval == "epoch" else epochs * steps_per_epoch
    if name == "cosine":
        kwargs.setdefault("T_max", length)
    if name == "onecycle":
        kwargs.setdefault("max_lr", optimizer.param_groups[0]["lr"])
        kwargs.setdefault("total_steps", length)
    if name in ("linear", "polynomial", "constant"):
        kwargs.setdefault("total_iters", length)
    scheduler = _call("scheduler", lambda **kw: getattr(lr_scheduler, _SCHEDULERS[name])(optimizer, **kw), kwargs)
    out = {"scheduler": scheduler, "interval": interval, "frequency": spec.get("frequency", 1)}
    if "monitor" in spec:
        out["monitor"] = spec["monitor"]
    return out


def build_callbacks(cfg):
    """``EarlyStopping`` from the config's ``early_stopping`` table, if any; for a generative model
    (``vae``, ``gan``), the ``GenerativeReport`` that writes sample grids and quality numbers."""
    from .callbacks import EarlyStopping
    from .generative import recipe_callbacks
    callbacks = []
    es = cfg.get("early_stopping")
    if es:
        callbacks.append(_call("early_stopping", EarlyStopping, dict(es)))
    callbacks += recipe_callbacks(cfg)
    return callbacks
