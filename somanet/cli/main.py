"""The ``somanet`` command: train, evaluate and predict with recipes, from the shell.

    somanet train                          # the default recipe (digits-mlp) on bundled data, offline
    somanet train spirals-mlp --epochs 30 --out runs/spirals
    somanet train --resume runs/spirals    # continue an interrupted run exactly
    somanet evaluate runs/spirals
    somanet predict runs/digits-mlp-001 digit.png
    somanet explain runs/transfer-digits-001 digit.png --method gradcam   # what the model looks at
    somanet recipes | summary RECIPE | lr-find RECIPE
    somanet embed MODEL_DIR "a sentence" ...   # sentence embeddings (sentence-transformers folders)
    somanet generate RUN_DIR --prompt TEXT     # text from a language-model run (shakespeare-char)
    somanet doctor runs/spirals            # why a run fails: findings with evidence and advice

Bad input (an unknown recipe, an invalid config, a missing or corrupt run directory or checkpoint, a
run directory that already exists or cannot be created, an unreadable, empty, oversized or
non-finite prediction input) gets one clear line on stderr, exit status 2, and nothing is written.
Exit status: 0 success, 1 training failed (non-finite loss), 2 bad input, 130 interrupted.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

from ..train import checkpoint as _ckpt
from ..train.recipe import (ConfigError, check_loss, check_training_config, load_config_file, parse_override,
                            validate_config)
from . import recipes as registry

__all__ = ["main", "CLIError"]

_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: The largest image ``predict`` decodes, in pixels (2048 x 2048), checked from the file's header before
#: decoding: the models take images of at most a few hundred pixels a side, and reading one costs
#: about 50 bytes per pixel (some 230 MB at this limit).
MAX_IMAGE_PIXELS = 2048 * 2048


class CLIError(Exception):
    """Bad command-line input; printed as ``somanet: error: <message>`` with exit status 2."""


# =========================================================================== helpers
def _number(cast, what, ok):
    """An argparse type: ``cast`` the text and require ``ok(value)``, else say it expected ``what``."""

    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    return parse


_positive_int = _number(int, "a positive integer", lambda v: v >= 1)
_non_negative_int = _number(int, "a non-negative integer", lambda v: v >= 0)
_positive_float = _number(float, "a positive number", lambda v: 0 < v < float("inf"))


def _next_free_dir(base):
    i = 1
    while os.path.exists(f"{base}-{i:03d}"):
        i += 1
    return f"{base}-{i:03d}"


def _check_new_dir(path, flag="--out"):
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise CLIError(f"{path} already exists and is not empty; nothing was overwritten. Choose another {flag}"
                       + (", or continue that run with --resume" if flag == "--out" else ""))
    # The nearest folder that exists must be a folder we may create the rest in.
    ancestor = os.path.abspath(path)
    while not os.path.exists(ancestor) and os.path.dirname(ancestor) != ancestor:
        ancestor = os.path.dirname(ancestor)
    shown = os.path.relpath(ancestor) if not os.path.isabs(path) else ancestor
    if not os.path.isdir(ancestor):
        raise CLIError(f"{flag} {path} cannot be created: {shown} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise CLIError(f"{flag} {path} cannot be created: no permission to write in {shown}")


def _resolve(args, recipe_name):
    """The run config from a recipe, a config file, flags and --set overrides (in that order)."""
    file_cfg = load_config_file(args.config) if getattr(args, "config", None) else {}
    if recipe_name is None:
        recipe_name = file_cfg.get("recipe") or registry.DEFAULT_RECIPE
    elif "recipe" in file_cfg and file_cfg["recipe"] != recipe_name:
        raise CLIError(f"the config file {args.config} is for recipe {file_cfg['recipe']!r} but the command "
                       f"names {recipe_name!r}")
    recipe = registry.get_recipe(recipe_name)
    file_cfg = {k: v for k, v in file_cfg.items() if k != "recipe"}
    flags = {}
    if getattr(args, "epochs", None) is not None:
        flags["epochs"] = args.epochs
    if getattr(args, "batch_size", None) is not None:
        flags["batch_size"] = args.batch_size
    if getattr(args, "seed", None) is not None:
        flags["seed"] = args.seed
    if getattr(args, "lr", None) is not None:
        flags["optimizer"] = {"lr": args.lr}
    if getattr(args, "max_steps", None) is not None:
        flags["max_steps"] = args.max_steps
    if getattr(args, "data_dir", None) is not None:
        flags["data"] = {"data_dir": args.data_dir}
    sets = [parse_override(s) for s in (getattr(args, "set", None) or [])]
    for s in sets:
        if "recipe" in s:
            raise CLIError("--set cannot change the recipe; name it as the first argument")
    return recipe.resolve(file_cfg, flags, *sets)


def _read_run_config(run_dir):
    if not os.path.exists(run_dir):
        raise CLIError(f"run directory {run_dir} does not exist")
    if not os.path.isdir(run_dir):
        raise CLIError(f"{run_dir} is not a directory (expected a run directory made by 'somanet train')")
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise CLIError(f"{path} is missing: {run_dir} is not a run directory made by 'somanet train'")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CLIError(f"{path} is corrupt: not valid JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise CLIError(f"{path} is corrupt: expected a JSON object, got {type(cfg).__name__}")
    try:
        validate_config(cfg)
        registry.get_recipe(cfg.get("recipe"))
    except ConfigError as exc:
        raise CLIError(f"{path} is not a valid run config: {exc}") from None
    return cfg


def _load_run_checkpoint(run_dir, which):
    if which in ("best", "last"):
        root = os.path.join(run_dir, "checkpoints")
        candidates = [which] + (["last"] if which == "best" else [])
        for name in candidates:
            path = os.path.join(root, name)
            if _ckpt.recover_checkpoint(path) is not None:  # also one a killed save left half swapped
                return _ckpt.load_checkpoint(path)
        raise CLIError(f"{os.path.join(root, which)} is missing: the run has no checkpoint to load "
                       f"(expected {' or '.join(candidates)} in {root})")
    return _ckpt.load_checkpoint(which)


def _model_from_run(args):
    cfg = _read_run_config(args.run_dir)
    if getattr(args, "data_dir", None):
        cfg["data"]["data_dir"] = args.data_dir
    ckpt = _load_run_checkpoint(args.run_dir, args.checkpoint)
    from ..train import seed_everything
    seed_everything(cfg["seed"])
    info = registry.data_info(cfg)
    model = registry.build_model(cfg, info)
    ckpt.load_model(model)
    return cfg, info, model, ckpt


def _dataset_arrays(dataset, batch_size=512):
    from ..data import DataLoader
    xs, ys = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        xs.append(np.asarray(batch[0].array))
        ys.append(np.asarray(batch[1].array))
    return np.concatenate(xs), np.concatenate(ys)


# =========================================================================== train
def train_device(args):
    """The device ``somanet train --device`` names, checked before anything is built (None: the CPU)."""
    spec = getattr(args, "device", None)
    if spec is None:
        return None
    from .. import devices

    try:
        device = devices.require(spec, "somanet train --device")
    except (RuntimeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    if device.type != "cpu" and getattr(args, "nproc", 1) > 1:
        raise CLIError("somanet train: --device with --nproc > 1 is not supported (data-parallel training runs on "
                       "CPU processes)")
    return device


def cmd_train(args):
    from ..rl import recipes as rl_recipes  # reinforcement-learning recipes run their own loop
    from . import launch
    device = train_device(args)
    if args.nproc > 1:  # data-parallel training: one rank per process, started through MPI
        if not launch.in_launched_job():
            return launch.relaunch_train(args)
        launch.start_worker(args.nproc)
    if rl_recipes.handles(args):
        if device is not None and device.type != "cpu":
            raise CLIError("somanet train: reinforcement-learning recipes run on the CPU; --device is not supported")
        return rl_recipes.cmd_train(args)
    from ..train import ModelCheckpoint, TerminateOnNaN, Trainer, seed_everything
    from ..train.recipe import build_callbacks, build_optimizer, build_scheduler
    from ..train.progress import format_logs

    resume_ckpt = None
    if args.resume:
        run_dir = args.resume
        cfg = _read_run_config(run_dir)
        fixed = [flag for flag, value in (("--lr", args.lr), ("--batch-size", args.batch_size), ("--seed", args.seed),
                                          ("--config", args.config), ("--out", args.out)) if value is not None]
        if args.set:
            fixed.append("--set")
        if fixed:
            raise CLIError(f"{', '.join(fixed)} cannot be changed when resuming: the run continues with the "
                           f"settings in {os.path.join(run_dir, 'config.json')} (only --epochs, --max-steps and "
                           f"--data-dir may be given)")
        if args.recipe and args.recipe != cfg["recipe"]:
            raise CLIError(f"{run_dir} is a run of recipe {cfg['recipe']!r}, not {args.recipe!r}")
        last = os.path.join(run_dir, "checkpoints", "last")
        if _ckpt.recover_checkpoint(last) is None:
            raise CLIError(f"{last} is missing: there is no checkpoint to resume in {run_dir}")
        # Reports a corrupt checkpoint before anything is built.
        resume_ckpt = _ckpt.load_checkpoint(last).path
        if args.epochs is not None:
            cfg["epochs"] = args.epochs
        # A run stopped on purpose at max_steps continues to its end unless a new limit is given.
        cfg["max_steps"] = args.max_steps
        if args.data_dir:
            cfg["data"]["data_dir"] = args.data_dir
        validate_config(cfg)
    else:
        cfg = _resolve(args, args.recipe)
        run_dir = args.out or _next_free_dir(os.path.join("runs", cfg["recipe"]))
        _check_new_dir(run_dir)

    seed_everything(cfg["seed"])
    info = registry.data_info(cfg)
    train_set, val_set, test_set = registry.load_data(cfg)
    # Everything the config names is built or checked here, before the run directory exists.
    check_training_config(cfg, has_validation=val_set is not None)
    model = launch.wrap_model(registry.build_model(cfg, info))
    optimizer = build_optimizer(cfg["optimizer"], model.parameters())
    steps_per_epoch = launch.steps_per_epoch(len(train_set), cfg["batch_size"])
    scheduler = build_scheduler(cfg["scheduler"], optimizer, cfg["epochs"], steps_per_epoch)
    callbacks = build_callbacks(cfg)
    ck = dict(cfg.get("checkpoint") or {})
    try:
        checkpoint = ModelCheckpoint(**ck)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config 'checkpoint': {exc}") from None
    nan_guard = TerminateOnNaN(verbose=False)  # the command prints the report itself, once
    callbacks += [checkpoint, nan_guard]
    trainer = Trainer(run_dir=run_dir, plots=not args.no_plots, device=device, **(cfg.get("trainer") or {}))

    os.makedirs(run_dir, exist_ok=True)
    print(f"{'Resuming' if resume_ckpt else 'Training'} {cfg['recipe']}: {len(train_set)} training / "
          f"{len(val_set)} validation samples, {cfg['epochs']} epochs, batch size {cfg['batch_size']}; "
          f"run directory {run_dir}", flush=True)
    try:
        trainer.fit(model, train_set, val_set, epochs=cfg["epochs"], optimizer=optimizer, loss=cfg["loss"],
                    metrics=cfg["metrics"], callbacks=callbacks, scheduler=scheduler, batch_size=cfg["batch_size"],
                    max_steps=cfg["max_steps"], resume=resume_ckpt, config=cfg)
    except KeyboardInterrupt:
        print(f"\ninterrupted. The latest checkpoint is in {os.path.join(run_dir, 'checkpoints', 'last')}; "
              f"continue with: somanet train --resume {run_dir}", file=sys.stderr)
        return 130

    logs = trainer.callback_metrics
    if nan_guard.report is not None:
        print(f"somanet: training failed: {trainer.stop_reason}", file=sys.stderr)
        print(f"Run directory: {run_dir}")
        return 1
    if trainer.stop_reason:
        print(f"Stopped: {trainer.stop_reason}")
    if logs:
        print(f"Final metrics (epoch {trainer.current_epoch}): {format_logs(logs, skip=('lr',))}")
    if checkpoint.best_model_score is not None:
        print(f"Best {checkpoint.monitor}: {checkpoint.best_model_score:.4f} "
              f"({os.path.join(run_dir, 'checkpoints', 'best')})")
    if cfg.get("task") == "classification" and logs and not args.no_plots and launch.is_writer():
        _classification_plots(trainer, model, val_set, info, os.path.join(run_dir, "plots"))
    print(f"Run directory: {run_dir}")
    return 0


def _classification_plots(trainer, model, dataset, info, folder):
    try:
        from ..train import plots
        x, y = _dataset_arrays(dataset)
        logits = trainer.predict(model, x)
        pred = logits.argmax(axis=-1)
        cm = np.zeros((info.num_classes, info.num_classes), dtype=np.int64)
        np.add.at(cm, (y, pred), 1)
        plots.plot_confusion_matrix(cm, os.path.join(folder, "confusion_matrix.png"), info.classes)
        if info.image_size is not None:
            images = x.reshape(len(x), *info.image_size)
            plots.plot_predictions(images, y, pred, os.path.join(folder, "predictions.png"), info.classes)
            z = logits - logits.max(axis=-1, keepdims=True)
            losses = np.log(np.exp(z).sum(axis=-1)) - z[np.arange(len(y)), y]
            plots.plot_top_losses(images, y, pred, losses, os.path.join(folder, "top_losses.png"), info.classes)
    except ImportError as exc:
        print(f"plots skipped: {exc}", file=sys.stderr)


# =========================================================================== evaluate / predict
def cmd_evaluate(args):
    from ..rl import recipes as rl_recipes
    if rl_recipes.is_rl_run(args.run_dir):
        return rl_recipes.cmd_evaluate(args)
    from ..train import Trainer
    from ..train.progress import format_logs
    cfg, info, model, ckpt = _model_from_run(args)
    _, val_set, test_set = registry.load_data(cfg)
    metrics = list(cfg["metrics"])
    if cfg.get("task") == "classification":
        metrics += [m for m in ("precision", "recall", "f1") if m not in metrics]
    trainer = Trainer(enable_progress_bar=False)
    epoch = ckpt.trainer_state.get("epoch")
    print(f"Checkpoint: {ckpt.path} (epoch {epoch + 1 if isinstance(epoch, int) else '?'})")
    for split, dataset in (("validation", val_set), ("test", test_set)):
        if dataset is None:
            continue
        result = trainer.evaluate(model, dataset, loss=cfg["loss"], metrics=metrics, batch_size=cfg["batch_size"])
        print(f"{split} ({len(dataset)} samples): {format_logs(result)}")
    return 0


def _check_image_size(path, width, height):
    if width * height > MAX_IMAGE_PIXELS:
        raise CLIError(f"{path} is a {width} x {height} image ({width * height:,} pixels); predict reads images of "
                       f"at most {MAX_IMAGE_PIXELS:,} pixels (2048 x 2048): scale it down or crop it to the digit")


def _read_image(path):
    from ..vision.io import ImageTooLargeError, read_grayscale
    try:
        return read_grayscale(path, max_pixels=MAX_IMAGE_PIXELS)
    except ImageTooLargeError as exc:
        _check_image_size(path, exc.width, exc.height)
        raise
    except ImportError as exc:
        raise CLIError(f"{exc}; or give a .npy file") from None
    except (ValueError, OSError) as exc:
        raise CLIError(str(exc)) from None


def _prepare_image(path, info):
    if info.image_size is None:
        raise CLIError(f"this run's inputs are not images (each sample has shape {tuple(info.input_shape)}); "
                       f"give a .npy file")
    img = _read_image(path)
    if img.size and img.mean() > 0.5:
        # The training images have bright ink on a dark background; a dark digit on paper is inverted.
        img = 1.0 - img
    from ..vision.io import resize_area
    img = resize_area(img, info.image_size)
    img = (img - np.float32(info.mean)) / np.float32(info.std)
    img = img.reshape(1, *info.input_shape).astype(np.float32)
    _check_finite(img, path)
    return img


def _check_finite(arr, path, after_cast=None):
    """Refuse an input holding NaN or infinity: the model would answer with NaN probabilities."""
    if arr.dtype.kind != "f":
        return
    bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1) if arr.ndim and len(arr) else np.zeros(0, bool)
    if bad.any():
        what = (f"values too large for {after_cast} (they become infinite)" if after_cast
                else "non-finite values (NaN or infinity)")
        raise CLIError(f"{path} holds {what} in {int(bad.sum())} of {len(arr)} sample(s), the first being "
                       f"sample {int(np.argmax(bad))}; the model needs finite inputs")


def _load_npy(path):
    """The array in a .npy file, refusing pickled objects and reporting a truncated file as such."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(f)
            else:
                shape, _, dtype = fmt._read_array_header(f, version)
            data_start = f.tell()
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise CLIError(f"{path} cannot be read: {exc.strerror or exc}") from None
    except Exception as exc:
        raise CLIError(f"{path} is not a valid .npy file: {exc}") from None
    if dtype.hasobject:
        raise CLIError(f"{path} cannot be loaded without pickle: it holds Python objects (dtype {dtype}), and "
                       f"somanet never unpickles; save a numeric array")
    expected = math.prod(shape) * dtype.itemsize
    if size - data_start < expected:
        raise CLIError(f"{path} is truncated or corrupt: its header describes a {dtype} array of shape {shape}, "
                       f"{expected:,} bytes of data, but only {size - data_start:,} bytes follow the header")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise CLIError(f"{path} is not a valid .npy file: {exc}") from None


def _prepare_npy(path, info, dtype):
    arr = _load_npy(path)
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiub":
        raise CLIError(f"{path} must hold a numeric array, got dtype {getattr(arr, 'dtype', type(arr).__name__)}")
    shape = tuple(info.input_shape)
    size = int(np.prod(shape))
    if arr.shape == shape:
        arr = arr[None]
    elif arr.shape[1:] == shape:
        pass
    elif arr.size == size:
        arr = arr.reshape(1, *shape)
    elif arr.ndim >= 2 and int(np.prod(arr.shape[1:])) == size:
        arr = arr.reshape(arr.shape[0], *shape)
    else:
        raise CLIError(f"{path} holds an array of shape {arr.shape}; this model takes samples of shape {shape} "
                       f"(a single sample, or a batch (N, {', '.join(map(str, shape))}))")
    if len(arr) == 0:
        raise CLIError(f"{path} holds no samples (an array of shape {arr.shape}); give at least one")
    _check_finite(arr, path)
    with np.errstate(over="ignore"):  # reported just below, in words
        out = arr.astype(dtype)
    _check_finite(out, path, after_cast=np.dtype(dtype).name)
    return out


def _input_type(path):
    """The extension of the input file ``path`` (an image or a .npy array); a CLIError if it is unusable."""
    if not os.path.exists(path):
        raise CLIError(f"input {path} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"input {path} is a directory; give an image file or a .npy file")
    ext = os.path.splitext(path)[1].lower()
    if ext != ".npy" and ext not in _IMAGE_EXTS:
        raise CLIError(f"input {path}: unsupported file type {ext or '(none)'!r}; give a .npy array or an "
                       f"image ({', '.join(_IMAGE_EXTS)})")
    return ext


def _read_input(path, ext, info, model):
    """The samples in ``path`` (``ext`` from ``_input_type``) as an (N, *input_shape) array of the model's dtype."""
    from ..train import Trainer
    dtype = Trainer._model_dtype(model)
    return _prepare_npy(path, info, dtype) if ext == ".npy" else _prepare_image(path, info)


def cmd_predict(args):
    from ..train import Trainer
    ext = _input_type(args.input)
    cfg, info, model, _ = _model_from_run(args)
    x = _read_input(args.input, ext, info, model)
    out = Trainer(enable_progress_bar=False).predict(model, x)
    if cfg.get("task") != "classification":
        for i, row in enumerate(out):
            print(f"sample {i}: {np.array2string(np.asarray(row), precision=4)}")
        return 0
    from ..autograd.tensor import Tensor
    from ..ops.reduce import softmax
    probs = softmax(Tensor(out.astype(np.float64)), dim=-1).array
    names = info.classes or [str(i) for i in range(probs.shape[-1])]
    k = min(args.top_k, probs.shape[-1])
    for i, p in enumerate(probs):
        order = np.argsort(-p, kind="stable")[:k]
        top = ", ".join(f"{names[j]} ({p[j]:.3f})" for j in order)
        print(f"sample {i}: predicted {names[order[0]]} (p={p[order[0]]:.3f}); top-{k}: {top}")
    return 0


# =========================================================================== recipes / summary / lr-find
def cmd_recipes(args):
    names = registry.recipe_names()
    width = max(len(n) for n in names)
    for name in names:
        recipe = registry.get_recipe(name)
        mark = " (default)" if name == registry.DEFAULT_RECIPE else ""
        print(f"{name.ljust(width)}  {recipe.description}{mark}")
    from ..rl.recipes import recipe_lines
    for line in recipe_lines(width):
        print(line)
    return 0


def cmd_summary(args):
    from ..train import seed_everything, summary
    cfg = _resolve(args, args.recipe)
    seed_everything(cfg["seed"])
    info = registry.data_info(cfg)
    model = registry.build_model(cfg, info)
    print(f"Recipe: {cfg['recipe']}")
    if hasattr(model, "generator") and hasattr(model, "discriminator"):
        from ..train.generative import gan_summary
        print(gan_summary(model, tuple(info.input_shape)))
    else:
        # A language model reads symbol ids, not floats.
        dtype = np.int64 if info.task in ("language_model", "translation") else None
        print(summary(model, tuple(info.input_shape), batch_size=cfg["batch_size"], dtype=dtype))
    return 0


def cmd_lr_find(args):
    from ..train import lr_find, seed_everything
    from ..train._io import atomic_write_text
    from ..train.recipe import build_optimizer
    if not args.min_lr < args.max_lr:
        raise CLIError(f"--min-lr must be below --max-lr, got --min-lr {args.min_lr:g} and --max-lr {args.max_lr:g}")
    if args.num_steps < 2:
        raise CLIError(f"--num-steps must be at least 2 (a range needs two points), got {args.num_steps}")
    cfg = _resolve(args, args.recipe)
    check_loss(cfg)
    out = args.out or _next_free_dir(os.path.join("runs", f"lr-find-{cfg['recipe']}"))
    _check_new_dir(out, "--out")
    seed_everything(cfg["seed"])
    info = registry.data_info(cfg)
    train_set, _, _ = registry.load_data(cfg)
    model = registry.build_model(cfg, info)
    optimizer = build_optimizer(cfg["optimizer"], model.parameters())
    result = lr_find(model, train_set, loss=cfg["loss"], optimizer=optimizer, min_lr=args.min_lr,
                     max_lr=args.max_lr, num_steps=args.num_steps, batch_size=cfg["batch_size"])
    os.makedirs(out, exist_ok=True)
    lines = ["lr,loss,smoothed_loss"] + [f"{lr!r},{raw!r},{s!r}" for lr, raw, s in
                                         zip(result.lrs, result.raw_losses, result.losses)]
    atomic_write_text(os.path.join(out, "lr_find.csv"), "\n".join(lines) + "\n")
    try:
        plot = result.plot(os.path.join(out, "lr_find.png"))
        print(f"Plot: {plot}")
    except ImportError as exc:
        print(f"plot skipped: {exc}", file=sys.stderr)
    print(f"Points: {os.path.join(out, 'lr_find.csv')}")
    if result.suggestion is None:
        print("No suggestion: the loss did not fall over the range; try a wider range (--min-lr / --max-lr) "
              "or more steps", file=sys.stderr)
        return 1
    print(f"Suggested learning rate: {result.suggestion:.3g} (the recipe uses {cfg['optimizer'].get('lr')})")
    return 0


# =========================================================================== parser
def _add_config_options(p, with_run_options=True):
    p.add_argument("--config", metavar="FILE", help="a TOML or YAML file of settings (command-line options win)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any config setting, e.g. --set optimizer.weight_decay=0.01 (repeatable)")
    p.add_argument("--batch-size", type=_positive_int, metavar="N", help="samples per batch")
    p.add_argument("--seed", type=_non_negative_int, metavar="N", help="the seed of the run")
    p.add_argument("--data-dir", metavar="DIR", help="the folder holding the recipe's data files (e.g. MNIST)")
    if with_run_options:
        p.add_argument("--epochs", type=_positive_int, metavar="N", help="number of epochs")
        p.add_argument("--lr", type=_positive_float, metavar="LR", help="learning rate")


def build_parser():
    """The argument parser of the ``somanet`` command."""
    parser = argparse.ArgumentParser(prog="somanet", description="Train, evaluate and use somanet models.")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"somanet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("train", help="train a recipe (digits-mlp by default)",
                       description="Train a recipe. With no recipe, trains the default (digits-mlp) on the bundled "
                                   "digits data, offline.")
    p.add_argument("recipe", nargs="?", help=f"the recipe to train (default: {registry.DEFAULT_RECIPE})")
    _add_config_options(p)
    p.add_argument("--out", metavar="DIR", help="the run directory to create (default: runs/RECIPE-NNN)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    p.add_argument("--max-steps", type=_positive_int, metavar="N", help="stop after N optimizer steps")
    p.add_argument("--no-plots", action="store_true", help="do not draw the plots at the end (saves a few seconds)")
    p.add_argument("--nproc", type=_positive_int, default=1, metavar="N",
                   help="train on N processes (data parallel through MPI; see docs/distributed.md)")
    p.add_argument("--device", metavar="DEVICE", default=None,
                   help="train on this device, e.g. cuda or cuda:1 (default: the CPU; see docs/gpu.md); may be "
                        "given when resuming")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="loss and metrics of a trained run on its validation (and test) data")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--checkpoint", default="best", metavar="best|last|DIR",
                   help="which checkpoint to load (default: best, else last)")
    p.add_argument("--data-dir", metavar="DIR", help="the data folder, if it moved since training")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict with a trained run on an image file or a .npy array")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("input", metavar="INPUT", help="an image (.png, .jpg, ...) or a .npy array of samples")
    p.add_argument("--checkpoint", default="best", metavar="best|last|DIR")
    p.add_argument("--top-k", type=_positive_int, default=3, metavar="K", help="classes to list per sample")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("recipes", help="list the recipes")
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser("summary", help="print a recipe's model: layers, shapes, parameters, memory")
    p.add_argument("recipe", metavar="RECIPE")
    _add_config_options(p, with_run_options=False)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("lr-find", help="run the learning-rate range test on a recipe")
    p.add_argument("recipe", metavar="RECIPE")
    _add_config_options(p, with_run_options=False)
    p.add_argument("--out", metavar="DIR", help="where to write lr_find.png and lr_find.csv "
                                                "(default: runs/lr-find-RECIPE-NNN)")
    p.add_argument("--min-lr", type=_positive_float, default=1e-7, metavar="LR")
    p.add_argument("--max-lr", type=_positive_float, default=10.0, metavar="LR")
    p.add_argument("--num-steps", type=_positive_int, default=100, metavar="N")
    p.set_defaults(func=cmd_lr_find)

    from .bench import add_parser as add_bench_parser
    add_bench_parser(sub)
    from .embed import add_parser as add_embed_parser
    add_embed_parser(sub)
    from .launch import add_parser as add_launch_parser
    add_launch_parser(sub)
    from .generate import add_parser as add_generate_parser
    add_generate_parser(sub)
    from .doctor import add_parser as add_doctor_parser
    add_doctor_parser(sub)
    from .explain import add_parser as add_explain_parser
    add_explain_parser(sub)
    return parser


def main(argv=None):
    """Run the ``somanet`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --nproc` starts the ranks with these
    try:
        return args.func(args)
    except (CLIError, ConfigError, _ckpt.CheckpointError) as exc:
        print(f"somanet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
