"""Checkpoints: a directory holding everything needed to continue a run exactly.

Layout of a checkpoint directory::

    model.safetensors    the model's state_dict (weights and buffers), readable by any safetensors tool
    state.safetensors    every other array: optimizer moments, callbacks' saved weights, metric states
    config.json          the run config (what was trained, with which settings)
    checkpoint.json      the manifest: format and version, the SHA-256 of the three files above, and the
                         training state (epoch, step, optimizer and scheduler settings, every random
                         state, callback states) as JSON, with arrays referenced by name

The whole directory is written under a temporary name and renamed into place, so a reader sees the old
checkpoint or the new one, never a mix. Nothing is ever unpickled: arrays come from safetensors and
everything else from JSON. Loading checks every file against the manifest and says which file is
missing or corrupt, and why.
"""
import hashlib
import json
import os

import numpy as np

from ..autograd.tensor import Tensor
from ._io import atomic_replace_dir, atomic_write_bytes

__all__ = ["CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint", "resolve_checkpoint",
           "encode_state", "decode_state", "save_weights", "load_weights"]

FORMAT = "somanet-checkpoint"
VERSION = 1
MODEL_FILE = "model.safetensors"
STATE_FILE = "state.safetensors"
CONFIG_FILE = "config.json"
MANIFEST_FILE = "checkpoint.json"

_TAGS = ("__array__", "__tensor__", "__scalar__", "__tuple__", "__dict__")


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
    manifest = {"format": FORMAT, "version": VERSION, "somanet_version": __version__,
                "files": {name: {"sha256": _sha256(b), "bytes": len(b)} for name, b in blobs.items()},
                "trainer_state": encoded}
    blobs[MANIFEST_FILE] = _json_bytes(manifest)

    def write(tmp_dir):
        for name, data in blobs.items():
            with open(os.path.join(tmp_dir, name), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

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


def resolve_checkpoint(path):
    """The checkpoint directory meant by ``path``: itself, or a run directory's ``checkpoints/last``.

    Raises ``CheckpointError`` naming what is missing.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path} does not exist (expected a checkpoint directory or a run directory)")
    if not os.path.isdir(path):
        raise CheckpointError(f"{path} is a file; expected a checkpoint directory (holding {MANIFEST_FILE}) "
                              f"or a run directory (holding checkpoints/last)")
    if os.path.exists(os.path.join(path, MANIFEST_FILE)):
        return path
    for sub in ("last", "best"):
        candidate = os.path.join(path, "checkpoints", sub)
        if os.path.isdir(candidate):
            return candidate
    if os.path.isdir(os.path.join(path, "checkpoints")):
        raise CheckpointError(f"{os.path.join(path, 'checkpoints')} holds no 'last' or 'best' checkpoint")
    raise CheckpointError(f"{path} is not a checkpoint: {MANIFEST_FILE} is missing, and it is not a run "
                          f"directory either (no checkpoints/ inside)")


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


def load_checkpoint(path):
    """Read and verify a checkpoint directory (or a run directory's latest checkpoint).

    Returns:
        a ``Checkpoint``.

    Raises:
        CheckpointError: naming the file that is missing or corrupt and why.
    """
    path = resolve_checkpoint(path)
    manifest_path = os.path.join(path, MANIFEST_FILE)
    manifest = _parse_json(_read(path, MANIFEST_FILE), manifest_path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CheckpointError(f"{manifest_path} is not a somanet checkpoint manifest (format {got!r}, "
                              f"expected {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise CheckpointError(f"{manifest_path} has checkpoint format version {manifest.get('version')!r}; "
                              f"this somanet reads version {VERSION}")
    files = manifest.get("files")
    if not isinstance(files, dict) or any(n not in files for n in (MODEL_FILE, STATE_FILE, CONFIG_FILE)):
        raise CheckpointError(f"{manifest_path} is corrupt: its 'files' entry does not list "
                              f"{MODEL_FILE}, {STATE_FILE} and {CONFIG_FILE}")
    blobs = {}
    for name in (MODEL_FILE, STATE_FILE, CONFIG_FILE):
        data = _read(path, name)
        expected = files[name]
        full = os.path.join(path, name)
        if len(data) != expected.get("bytes"):
            raise CheckpointError(f"{full} is corrupt: it has {len(data)} bytes but {MANIFEST_FILE} recorded "
                                  f"{expected.get('bytes')} (truncated or overwritten)")
        if _sha256(data) != expected.get("sha256"):
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
    model_state = {k: np.array(v, copy=True) for k, v in parsed[MODEL_FILE].items()}
    trainer_state = decode_state(manifest.get("trainer_state", {}), parsed[STATE_FILE])
    return Checkpoint(path, model_state, trainer_state, config, manifest)


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
