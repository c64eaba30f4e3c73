"""Checkpoints: a directory holding everything needed to continue a run exactly.

Layout of a checkpoint directory::

    model.safetensors    the model's state_dict (weights and buffers), readable by any safetensors tool
    state.safetensors    every other array: optimizer moments, callbacks' saved weights, metric states
    config.json          the run config (what was trained, with which settings)
    checkpoint.json      the manifest: format and version, the SHA-256 of the three files above, and the
                         training state (epoch, step, optimizer and scheduler settings, every random
                         state, callback states) as JSON, with arrays referenced by name

The whole directory is written under a hidden temporary name and renamed into place, so a reader sees
the old checkpoint or the new one, never a mix. Replacing a checkpoint takes two renames (the old one
aside, the new one in); a process killed between them leaves both complete under hidden names and
no checkpoint at ``path``: loading then takes the newest complete one and moves it back to ``path``.
Hidden directories left by killed writers are deleted by the next save or load in the same folder
(never those of a writer that still runs). Nothing is ever unpickled: arrays come from safetensors and
everything else from JSON. Loading checks every file against the manifest, and the manifest against
its schema, and says which file or field is missing or corrupt, and why.
"""
import hashlib
import json
import numbers
import os
import shutil
import time

import numpy as np

from .. import devices
from ..autograd.tensor import Tensor
from ._io import (atomic_replace_dir, atomic_write_bytes, parse_hidden_dir_name, stale_hidden_dirs,
                  writer_is_gone)

__all__ = ["CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint", "resolve_checkpoint",
           "recover_checkpoint", "encode_state", "decode_state", "save_weights", "load_weights"]

FORMAT = "somanet-checkpoint"
VERSION = 1
MODEL_FILE = "model.safetensors"
STATE_FILE = "state.safetensors"
CONFIG_FILE = "config.json"
MANIFEST_FILE = "checkpoint.json"

_TAGS = ("__array__", "__tensor__", "__scalar__", "__tuple__", "__dict__")
#: The deepest nesting a manifest may hold (a Trainer's state is about ten levels deep).
MAX_DEPTH = 100
# How long a reader waits for a writer that is between the two renames of a swap.
_SWAP_WAIT_SECONDS = 2.0


class CheckpointError(Exception):
    """A checkpoint (or run directory) is missing, incomplete or corrupt; the message says which file."""


def _safetensors():
    try:
        import safetensors.numpy as st
    except ImportError as exc:  # pragma: no cover - the train extra installs it
        raise ImportError("checkpoints need the safetensors package: pip install 'somanet[train]'") from exc
    return st


# --------------------------------------------------------------------------- nested state <-> JSON + arrays
def encode_state(obj, arrays, path="state"):
    """Turn a nested state (dicts, lists, tuples, scalars, arrays, tensors) into JSON plus named arrays.

    Arrays and tensors are moved into ``arrays`` under their dotted ``path`` and replaced by a
    reference; NumPy scalars, tuples and dicts with non-string keys are tagged so that
    ``decode_state`` gives back the same types (an ``np.float32`` stays an ``np.float32``, which
    matters for bit-exact arithmetic after a resume).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)) and not isinstance(obj, np.generic):
        return obj
    if isinstance(obj, Tensor):
        arrays[path] = _contiguous(obj.array)
        return {"__tensor__": path, "requires_grad": bool(obj.requires_grad)}
    if type(obj) in devices._array_types:  # an array on a device (optimizer state): saved from the host
        obj = devices.to_host(obj)
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError(f"cannot save {path}: object arrays are not supported (they would need pickle)")
        arrays[path] = _contiguous(obj)
        return {"__array__": path}
    if isinstance(obj, np.generic):
        return {"__scalar__": obj.dtype.str, "value": obj.item()}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(v, arrays, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, arrays, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k in _TAGS for k in obj):
            return {k: encode_state(v, arrays, f"{path}.{k}") for k, v in obj.items()}
        return {"__dict__": [[encode_state(k, arrays, f"{path}.key{i}"), encode_state(v, arrays, f"{path}.{k}")]
                             for i, (k, v) in enumerate(obj.items())]}
    raise TypeError(f"cannot save {path}: values of type {type(obj).__name__} are not supported "
                    f"(expected dicts, lists, tuples, numbers, strings, arrays or tensors)")


def decode_state(obj, arrays):
    """Inverse of ``encode_state``: rebuild the nested state, taking arrays from ``arrays``."""
    if isinstance(obj, list):
        return [decode_state(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__array__" in obj:
        return _take(arrays, obj["__array__"])
    if "__tensor__" in obj:
        return Tensor(_take(arrays, obj["__tensor__"]), requires_grad=obj.get("requires_grad", False))
    if "__scalar__" in obj:
        return np.dtype(obj["__scalar__"]).type(obj["value"])
    if "__tuple__" in obj:
        return tuple(decode_state(v, arrays) for v in obj["__tuple__"])
    if "__dict__" in obj:
        return {decode_state(k, arrays): decode_state(v, arrays) for k, v in obj["__dict__"]}
    return {k: decode_state(v, arrays) for k, v in obj.items()}


def _contiguous(a):
    # np.ascontiguousarray would turn a 0-d array (e.g. num_batches_tracked) into shape (1,).
    a = devices.to_host(a)  # checkpoints hold host arrays: they load without the device
    return a if a.flags.c_contiguous else np.array(a, order="C")


def _take(arrays, key):
    if key not in arrays:
        raise CheckpointError(f"{STATE_FILE} has no array '{key}' although {MANIFEST_FILE} refers to it")
    # safetensors hands back read-only views on its buffer; states are modified in place later.
    return np.array(arrays[key], copy=True)


# --------------------------------------------------------------------------- writing
def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _model_arrays(model):
    return {k: _contiguous(v.array) for k, v in model.state_dict().items()}


def _json_bytes(obj):
    return (json.dumps(obj, indent=1, allow_nan=True) + "\n").encode("utf-8")


def save_checkpoint(path, model, trainer_state=None, config=None):
    """Write a checkpoint directory at ``path`` (replacing any previous one atomically).

    Args:
        path: the checkpoint directory.
        model: the module whose ``state_dict`` is saved.
        trainer_state: a nested dict (optimizer and scheduler states, counters, random states,
            callback states); arrays inside go to ``state.safetensors``.
        config: the run config, a JSON-friendly dict.

    Returns:
        ``path``.
    """
    st = _safetensors()
    arrays = {}
    encoded = encode_state(trainer_state or {}, arrays, "state")
    blobs = {
        MODEL_FILE: st.save(_model_arrays(model), metadata={"format": FORMAT}),
        STATE_FILE: st.save(arrays, metadata={"format": FORMAT}),
        CONFIG_FILE: _json_bytes(config or {}),
    }
    from .. import __version__
    manifest = {"format": FORMAT, "version": VERSION, "somanet_version": __version__, "saved_ns": time.time_ns(),
                "files": {name: {"sha256": _sha256(b), "bytes": len(b)} for name, b in blobs.items()},
                "trainer_state": encoded}
    blobs[MANIFEST_FILE] = _json_bytes(manifest)

    def write(tmp_dir):
        for name, data in blobs.items():
            with open(os.path.join(tmp_dir, name), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

    _tidy(os.path.dirname(os.path.abspath(os.fspath(path))))
    atomic_replace_dir(path, write)
    return path


def save_weights(model, path):
    """Write only the model's weights to a ``.safetensors`` file (atomically)."""
    st = _safetensors()
    atomic_write_bytes(path, st.save(_model_arrays(model), metadata={"format": FORMAT}))
    return path


# --------------------------------------------------------------------------- reading
class Checkpoint:
    """A loaded checkpoint: ``model_state`` (name -> array), ``trainer_state``, ``config``, ``path``."""

    def __init__(self, path, model_state, trainer_state, config, manifest):
        self.path = path
        self.model_state = model_state
        self.trainer_state = trainer_state
        self.config = config
        self.manifest = manifest

    def load_model(self, model, strict=True):
        """Copy the saved weights into ``model``; a mismatch raises ``CheckpointError``."""
        try:
            return model.load_state_dict(self.model_state, strict=strict)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{os.path.join(self.path, MODEL_FILE)} does not fit the model "
                                  f"{type(model).__name__}: {exc}") from exc

    def __repr__(self):
        epoch = self.trainer_state.get("epoch") if isinstance(self.trainer_state, dict) else None
        return f"Checkpoint(path={self.path!r}, epoch={epoch}, tensors={len(self.model_state)})"


# --------------------------------------------------------------------------- recovery after a kill
def _saved_ns(manifest, path):
    value = manifest.get("saved_ns")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return os.stat(os.path.join(path, MANIFEST_FILE)).st_mtime_ns
    except OSError:
        return 0


def _newest_complete(entries):
    """The path of the newest complete checkpoint among hidden ``(kind, path)`` entries, or None."""
    best = None
    for kind, path in entries:
        try:
            ckpt = _load_dir(path)
        except CheckpointError:
            continue  # a write that was killed before it finished
        key = (_saved_ns(ckpt.manifest, path), kind == "tmp")
        if best is None or key > best[0]:
            best = (key, path)
    return None if best is None else best[1]


def _only_checkpoint_files(path):
    try:
        return set(os.listdir(path)) <= {MODEL_FILE, STATE_FILE, CONFIG_FILE, MANIFEST_FILE}
    except OSError:
        return False


def _recover_folder(parent):
    """Tidy what killed writers left in ``parent``; returns ``{name: path}`` of recovered checkpoints.

    For each checkpoint name whose directory is missing, the newest complete hidden copy is moved
    back into place (or, where the folder cannot be written, used where it is); every other hidden
    directory of a writer that no longer runs is deleted.
    """
    recovered = {}
    for base, entries in stale_hidden_dirs(parent).items():
        # Only what a checkpoint save makes: a folder holding anything else is not ours to touch.
        entries = [(kind, path) for kind, path in entries if _only_checkpoint_files(path)]
        target = os.path.join(parent, base)
        if not os.path.lexists(target):
            newest = _newest_complete(entries)
            if newest is not None:
                try:
                    os.rename(newest, target)
                except OSError:
                    if not os.path.isdir(target):  # not moved by another reader meanwhile: use it in place
                        recovered[base] = newest
                        continue
                recovered[base] = target
        for _, path in entries:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
    return recovered


def _tidy(parent):
    try:
        _recover_folder(parent)
    except OSError:
        pass  # tidying is a courtesy; it never fails a save or a load


def _swap_in_progress(parent, base):
    """Whether a writer that still runs has hidden directories for ``base`` in ``parent``."""
    try:
        names = os.listdir(parent)
    except OSError:
        return False
    return any((parse_hidden_dir_name(n) or (None,))[0] == base and not writer_is_gone(os.path.join(parent, n))
               for n in names)


def recover_checkpoint(path):
    """The checkpoint directory ``path`` if it exists, else the newest complete copy that a writer
    killed in the middle of replacing it left under a hidden name (moved back to ``path`` where the
    folder is writable), else None."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        return path
    parent, base = os.path.split(path)
    if not os.path.isdir(parent):
        return None
    deadline = time.monotonic() + _SWAP_WAIT_SECONDS
    while True:
        try:
            found = _recover_folder(parent).get(base)
        except OSError:
            found = None
        if found is not None and os.path.isdir(found):
            return found
        if os.path.isdir(path):
            return path
        # A writer that still runs is between its two renames: the new directory appears at once.
        if time.monotonic() >= deadline or not _swap_in_progress(parent, base):
            return None
        time.sleep(0.02)


def resolve_checkpoint(path):
    """The checkpoint directory meant by ``path``: itself, or a run directory's ``checkpoints/last``
    (else ``checkpoints/best``), recovering one that a killed save left under a hidden name.

    Raises ``CheckpointError`` naming what is missing.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        found = recover_checkpoint(path)
        if found is not None:
            return path if os.path.isdir(path) else found
        raise CheckpointError(f"{path} does not exist (expected a checkpoint directory or a run directory)")
    if not os.path.isdir(path):
        raise CheckpointError(f"{path} is a file; expected a checkpoint directory (holding {MANIFEST_FILE}) "
                              f"or a run directory (holding checkpoints/last)")
    if os.path.exists(os.path.join(path, MANIFEST_FILE)):
        return path
    for sub in ("last", "best"):
        candidate = os.path.join(path, "checkpoints", sub)
        found = recover_checkpoint(candidate)
        if found is not None:
            return candidate if os.path.isdir(candidate) else found
    if os.path.isdir(os.path.join(path, "checkpoints")):
        raise CheckpointError(f"{os.path.join(path, 'checkpoints')} holds no 'last' or 'best' checkpoint")
    raise CheckpointError(f"{path} is not a checkpoint: {MANIFEST_FILE} is missing, and it is not a run "
                          f"directory either (no checkpoints/ inside)")


# --------------------------------------------------------------------------- reading
def _read(path, name):
    full = os.path.join(path, name)
    try:
        with open(full, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise CheckpointError(f"{full} is missing; the checkpoint is incomplete") from None
    except OSError as exc:
        raise CheckpointError(f"{full} cannot be read: {exc.strerror or exc}") from exc


def _parse_json(data, full):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{full} is corrupt: not valid JSON ({exc})") from None
    except RecursionError:
        raise CheckpointError(f"{full} is corrupt: its JSON is nested too deeply to be a checkpoint "
                              f"(at most {MAX_DEPTH} levels)") from None


def load_checkpoint(path):
    """Read and verify a checkpoint directory (or a run directory's latest checkpoint).

    A checkpoint that a killed save left under a hidden name is recovered (see the module's
    docstring), and hidden directories of killed writers in its folder are deleted.

    Returns:
        a ``Checkpoint``.

    Raises:
        CheckpointError: naming the file (and field) that is missing or corrupt and why.
    """
    for attempt in range(3):
        resolved = resolve_checkpoint(path)
        try:
            ckpt = _load_dir(resolved)
        except CheckpointError:
            # A writer may have replaced the checkpoint while it was read: read the new one.
            if attempt < 2 and not os.path.isdir(resolved):
                continue
            raise
        if parse_hidden_dir_name(os.path.basename(os.path.abspath(resolved))) is None:
            _tidy(os.path.dirname(os.path.abspath(resolved)))
        return ckpt


def _load_dir(path):
    manifest_path = os.path.join(path, MANIFEST_FILE)
    manifest = _parse_json(_read(path, MANIFEST_FILE), manifest_path)
    _check_manifest(manifest, manifest_path)
    files = manifest["files"]
    blobs = {}
    for name in (MODEL_FILE, STATE_FILE, CONFIG_FILE):
        data = _read(path, name)
        expected = files[name]
        full = os.path.join(path, name)
        if len(data) != expected["bytes"]:
            raise CheckpointError(f"{full} is corrupt: it has {len(data)} bytes but {MANIFEST_FILE} recorded "
                                  f"{expected['bytes']} (truncated or overwritten)")
        if _sha256(data) != expected["sha256"]:
            raise CheckpointError(f"{full} is corrupt: its SHA-256 does not match the one recorded in "
                                  f"{MANIFEST_FILE} (the file was modified after it was saved)")
        blobs[name] = data
    st = _safetensors()
    parsed = {}
    for name in (MODEL_FILE, STATE_FILE):
        try:
            parsed[name] = st.load(blobs[name])
        except Exception as exc:  # safetensors raises its own error type
            raise CheckpointError(f"{os.path.join(path, name)} is corrupt: {exc}") from None
    config = _parse_json(blobs[CONFIG_FILE], os.path.join(path, CONFIG_FILE))
    if not isinstance(config, dict):
        raise CheckpointError(f"{os.path.join(path, CONFIG_FILE)} is corrupt: expected a JSON object, got "
                              f"{_json_type(config)}")
    model_state = {k: np.array(v, copy=True) for k, v in parsed[MODEL_FILE].items()}
    encoded = manifest.get("trainer_state", {})
    _check_encoded(encoded, parsed[STATE_FILE], manifest_path)
    try:
        trainer_state = decode_state(encoded, parsed[STATE_FILE])
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{manifest_path} is corrupt: field 'trainer_state' cannot be decoded ({exc})") from None
    if isinstance(trainer_state, dict) and any(k in trainer_state for k in _TRAINER_MARKS):
        _check_trainer_state(trainer_state, manifest_path, {np.shape(v) for v in model_state.values()})
    return Checkpoint(path, model_state, trainer_state, config, manifest)


# --------------------------------------------------------------------------- the manifest's schema
def _json_type(value):
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def _bad(manifest_path, field, problem):
    return CheckpointError(f"{manifest_path} is corrupt: field '{field}' {problem}")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _check_depth(obj, manifest_path):
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise CheckpointError(f"{manifest_path} is corrupt: its JSON is nested more than {MAX_DEPTH} levels "
                                  f"deep, far more than any checkpoint")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def _check_manifest(manifest, manifest_path):
    """The manifest's top level: format, version, and the size and SHA-256 of each file."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else _json_type(manifest)
        raise CheckpointError(f"{manifest_path} is not a somanet checkpoint manifest (format {got!r}, "
                              f"expected {FORMAT!r})")
    version = manifest.get("version")
    if not _is_int(version) or version != VERSION:
        raise CheckpointError(f"{manifest_path} has checkpoint format version {version!r}; "
                              f"this somanet reads version {VERSION}")
    _check_depth(manifest, manifest_path)
    for key in ("somanet_version",):
        if key in manifest and not isinstance(manifest[key], str):
            raise _bad(manifest_path, key, f"must be a string, got {_json_type(manifest[key])}")
    if "saved_ns" in manifest and not _is_int(manifest["saved_ns"]):
        raise _bad(manifest_path, "saved_ns", f"must be an integer, got {_json_type(manifest['saved_ns'])}")
    files = manifest.get("files")
    if not isinstance(files, dict) or any(n not in files for n in (MODEL_FILE, STATE_FILE, CONFIG_FILE)):
        raise CheckpointError(f"{manifest_path} is corrupt: its 'files' entry does not list "
                              f"{MODEL_FILE}, {STATE_FILE} and {CONFIG_FILE}")
    for name in (MODEL_FILE, STATE_FILE, CONFIG_FILE):
        entry = files[name]
        if not isinstance(entry, dict):
            raise _bad(manifest_path, f"files.{name}", f"must be an object, got {_json_type(entry)}")
        size, digest = entry.get("bytes"), entry.get("sha256")
        if not _is_int(size) or size < 0:
            raise _bad(manifest_path, f"files.{name}.bytes", f"must be a non-negative integer, got {size!r}")
        if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise _bad(manifest_path, f"files.{name}.sha256", f"must be 64 lowercase hex digits, got {digest!r}")
    if "trainer_state" in manifest and not isinstance(manifest["trainer_state"], dict):
        raise _bad(manifest_path, "trainer_state", f"must be an object, got {_json_type(manifest['trainer_state'])}")


def _check_encoded(encoded, arrays, manifest_path):
    """Every tagged value in the encoded state is well formed (what ``decode_state`` relies on)."""
    stack = [(encoded, "trainer_state", False)]
    while stack:
        node, where, as_key = stack.pop()
        if isinstance(node, list):
            if as_key:
                raise _bad(manifest_path, where, "is a dict key, so it cannot be a list")
            stack.extend((v, f"{where}.{i}", False) for i, v in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        tags = [t for t in _TAGS if t in node]
        if not tags:
            if as_key:
                raise _bad(manifest_path, where, "is a dict key, so it cannot be an object")
            stack.extend((v, f"{where}.{k}", False) for k, v in node.items())
            continue
        tag = tags[0]
        allowed = {"__array__": {"__array__"}, "__tensor__": {"__tensor__", "requires_grad"},
                   "__scalar__": {"__scalar__", "value"}, "__tuple__": {"__tuple__"}, "__dict__": {"__dict__"}}[tag]
        extra = sorted(set(node) - allowed)
        if len(tags) > 1 or extra:
            raise _bad(manifest_path, where, f"mixes the marker {tag!r} with other keys {extra or tags[1:]}")
        value = node[tag]
        if tag in ("__array__", "__tensor__"):
            if as_key:
                raise _bad(manifest_path, where, "is a dict key, so it cannot be an array")
            if not isinstance(value, str):
                raise _bad(manifest_path, f"{where}.{tag}", f"must name an array, got {_json_type(value)}")
            if value not in arrays:
                raise CheckpointError(f"{STATE_FILE} has no array '{value}' although {MANIFEST_FILE} refers to it "
                                      f"(field '{where}')")
            if tag == "__tensor__" and not isinstance(node.get("requires_grad", False), bool):
                raise _bad(manifest_path, f"{where}.requires_grad",
                           f"must be true or false, got {_json_type(node['requires_grad'])}")
        elif tag == "__scalar__":
            _check_scalar(value, node.get("value"), where, manifest_path)
        elif tag == "__tuple__":
            if not isinstance(value, list):
                raise _bad(manifest_path, f"{where}.__tuple__", f"must be a list, got {_json_type(value)}")
            stack.extend((v, f"{where}.{i}", as_key) for i, v in enumerate(value))
        else:
            if as_key:
                raise _bad(manifest_path, where, "is a dict key, so it cannot be a dict")
            if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
                raise _bad(manifest_path, f"{where}.__dict__", "must be a list of [key, value] pairs")
            for i, (k, v) in enumerate(value):
                name = k if isinstance(k, (str, int)) and not isinstance(k, bool) else f"[{i}]"
                stack.append((k, f"{where}.key{i}", True))
                stack.append((v, f"{where}.{name}", False))


def _check_scalar(dtype, value, where, manifest_path):
    try:
        dt = np.dtype(dtype) if isinstance(dtype, str) else None
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "biuf":
        raise _bad(manifest_path, f"{where}.__scalar__", f"must be a NumPy number type such as '<f4' or '<i8', "
                                                         f"got {dtype!r}")
    if not isinstance(value, (bool, int, float)) or (dt.kind != "b" and isinstance(value, bool)):
        raise _bad(manifest_path, f"{where}.value", f"must be a number for the type {dtype!r}, got "
                                                    f"{_json_type(value)}")
    try:
        if dt.kind in "iu" and (not isinstance(value, int) or not np.iinfo(dt).min <= value <= np.iinfo(dt).max):
            raise ValueError
        dt.type(value)
    except (ValueError, OverflowError, TypeError):
        raise _bad(manifest_path, f"{where}.value", f"{value!r} does not fit the type {dtype!r}") from None


# What a Trainer's state holds (``Trainer._state_dict``); a state with these keys is checked against it.
_TRAINER_MARKS = ("global_step", "epoch_done", "optimizers")
_TRAINER_COUNTERS = ("epoch", "batch_idx", "global_step")


def _check_trainer_state(state, manifest_path, weight_shapes=()):
    field = "trainer_state"
    for key in _TRAINER_COUNTERS + ("epoch_done", "optimizers", "callbacks", "rng"):
        if key not in state:
            raise _bad(manifest_path, f"{field}.{key}", "is missing (the training state is incomplete)")
    for key in _TRAINER_COUNTERS:
        if not _is_int(state[key]) or state[key] < 0:
            raise _bad(manifest_path, f"{field}.{key}", f"must be a non-negative integer, got {state[key]!r}")
    if state.get("max_epochs") is not None and (not _is_int(state["max_epochs"]) or state["max_epochs"] < 0):
        raise _bad(manifest_path, f"{field}.max_epochs", f"must be a non-negative integer or null, got "
                                                         f"{state['max_epochs']!r}")
    if not isinstance(state["epoch_done"], (bool, np.bool_)):
        raise _bad(manifest_path, f"{field}.epoch_done", f"must be true or false, got {state['epoch_done']!r}")
    for key in ("callbacks", "rng"):
        if not isinstance(state[key], dict):
            raise _bad(manifest_path, f"{field}.{key}", f"must be an object, got {type(state[key]).__name__}")
    for key in ("epoch_start_rng", "running"):
        if state.get(key) is not None and not isinstance(state[key], dict):
            raise _bad(manifest_path, f"{field}.{key}", f"must be an object or null, got {type(state[key]).__name__}")
    _check_rng(state["rng"], f"{field}.rng", manifest_path)
    if state.get("epoch_start_rng") is not None:
        _check_rng(state["epoch_start_rng"], f"{field}.epoch_start_rng", manifest_path)
    metrics = state.get("callback_metrics")
    if metrics is not None:
        if not isinstance(metrics, dict):
            raise _bad(manifest_path, f"{field}.callback_metrics", f"must be an object, got {type(metrics).__name__}")
        for k, v in metrics.items():
            if not (_is_number(v) or (isinstance(v, np.ndarray) and v.ndim == 0)):
                raise _bad(manifest_path, f"{field}.callback_metrics.{k}", f"must be a number, got {v!r}")
    running = state.get("running")
    if running is not None:
        for key, ok, what in (("loss_sum", _is_number, "a number"), ("loss_count", _is_int, "an integer"),
                              ("metrics", lambda v: isinstance(v, list), "a list"),
                              ("extras", lambda v: isinstance(v, dict), "an object")):
            if key not in running or not ok(running[key]):
                raise _bad(manifest_path, f"{field}.running.{key}", f"must be {what}, got {running.get(key)!r}")
    if not isinstance(state["optimizers"], list):
        raise _bad(manifest_path, f"{field}.optimizers", f"must be a list, got {type(state['optimizers']).__name__}")
    for i, opt in enumerate(state["optimizers"]):
        _check_optimizer_state(opt, f"{field}.optimizers.{i}", manifest_path, weight_shapes)


def _check_rng(rng, where, manifest_path):
    for key in ("somanet", "numpy", "python", "generators"):
        if key not in rng:
            raise _bad(manifest_path, f"{where}.{key}", "is missing")
    if not isinstance(rng["generators"], list):
        raise _bad(manifest_path, f"{where}.generators", f"must be a list, got {type(rng['generators']).__name__}")


def _check_optimizer_state(opt, where, manifest_path, weight_shapes=()):
    if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict) \
            or not isinstance(opt.get("param_groups"), list):
        raise _bad(manifest_path, where, "must be an object with 'state' (an object) and 'param_groups' (a list)")
    indices = set()
    for g, group in enumerate(opt["param_groups"]):
        gw = f"{where}.param_groups.{g}"
        if not isinstance(group, dict) or not isinstance(group.get("params"), list) \
                or not all(_is_int(i) for i in group["params"]):
            raise _bad(manifest_path, gw, "must be an object whose 'params' is a list of parameter indices")
        indices.update(group["params"])
        for key in ("lr", "weight_decay", "momentum", "eps"):
            if key in group and not _is_number(group[key]):
                raise _bad(manifest_path, f"{gw}.{key}", f"must be a number, got {group[key]!r}")
    for index, entry in opt["state"].items():
        sw = f"{where}.state.{index}"
        if index not in indices:
            raise _bad(manifest_path, sw, f"belongs to no parameter: {index!r} is not listed in any param group")
        if not isinstance(entry, dict):
            raise _bad(manifest_path, sw, f"must be an object, got {type(entry).__name__}")
        # Every per-parameter array (a moment, a momentum buffer) has the parameter's shape.
        shapes = {k: np.shape(v) for k, v in entry.items() if isinstance(v, np.ndarray) and k != "step"}
        for key, value in entry.items():
            if key == "step" and not (_is_number(value) or (isinstance(value, np.ndarray) and value.size == 1)):
                raise _bad(manifest_path, f"{sw}.step", f"must be a number, got {value!r}")
            if isinstance(value, np.ndarray) and key != "step" and value.dtype.kind not in "biuf":
                raise _bad(manifest_path, f"{sw}.{key}", f"must be a numeric array, got dtype {value.dtype}")
        if len(set(shapes.values())) > 1:
            # Name the array least likely to be right: one whose shape no weight of the model has,
            # else one whose shape the others do not share.
            ranked = sorted(shapes, key=lambda k: (shapes[k] in weight_shapes, list(shapes.values()).count(shapes[k]),
                                                   k))
            odd = ranked[0]
            other = next(k for k in ranked[::-1] if shapes[k] != shapes[odd])
            raise _bad(manifest_path, f"{sw}.{odd}", f"has shape {shapes[odd]} but {other} has shape {shapes[other]}; "
                                                      f"both must have the parameter's shape")


def load_weights(model, path, strict=True):
    """Load weights into ``model`` from a ``.safetensors`` file or a checkpoint/run directory."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return load_checkpoint(path).load_model(model, strict=strict)
    if not os.path.exists(path):
        raise CheckpointError(f"{path} does not exist (expected a .safetensors file or a checkpoint directory)")
    st = _safetensors()
    with open(path, "rb") as f:
        data = f.read()
    try:
        arrays = st.load(data)
    except Exception as exc:
        raise CheckpointError(f"{path} is corrupt or not a safetensors file: {exc}") from None
    ckpt = Checkpoint(os.path.dirname(path), {k: np.array(v) for k, v in arrays.items()}, {}, {}, {})
    try:
        return model.load_state_dict(ckpt.model_state, strict=strict)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} does not fit the model {type(model).__name__}: {exc}") from exc
