"""``somanet.save`` and ``somanet.load``: tensors and state dicts in PyTorch's checkpoint format.

``save`` writes the zip archive that ``torch.save`` writes (``archive/data.pkl`` plus one record per
storage), so ``torch.load(f, weights_only=True)`` reads it. ``load`` reads that archive and PyTorch's
older non-zip format (``torch.save(..., _use_new_zipfile_serialization=False)``).

Loading never runs code from the file. The pickle inside a checkpoint is read by an unpickler that
resolves only a fixed list of names (the functions that rebuild tensors and parameters, the storage
types, dtypes, ``torch.Size``, ``torch.device``, ``collections.OrderedDict`` and the few builtins that
pickle uses for bytes, sets and complex numbers), each replaced by a somanet function that checks its
arguments. Any other name (``os.system``, ``builtins.eval``, a class from a training script) is
refused before anything is called. Only the standard library and NumPy are used.

Layout of the zip archive (every record stored uncompressed, storages aligned to 64 bytes)::

    archive/data.pkl                 the object, pickled (protocol 2); tensors refer to storages by key
    archive/.format_version          "1"
    archive/.storage_alignment       "64"
    archive/byteorder                "little"
    archive/data/0, data/1, ...      the raw bytes of each storage, little-endian
    archive/version                  "3"
    archive/.data/serialization_id   an id derived from the records' names and checksums

A tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, OrderedDict())`` where ``storage`` is the persistent id ``('storage',
torch.FloatStorage, key, 'cpu', numel)``; dtypes without a legacy storage class (uint16, uint32,
uint64) use ``_rebuild_tensor_v3`` with an untyped storage and the dtype as an extra argument. A bare
``Parameter`` is wrapped in ``torch._utils._rebuild_parameter(tensor, requires_grad, OrderedDict())``.
"""
import hashlib
import io
import os
import pickle
import re
import struct
import sys
import zipfile
from collections import Counter, OrderedDict

import numpy as np

from .autograd.tensor import Tensor

__all__ = ["save", "load", "UnsafeLoadError", "CheckpointFormatError"]


class UnsafeLoadError(pickle.UnpicklingError):
    """``load`` refused a file because its pickle asks for something other than tensors, storages,
    OrderedDicts and primitive values (a global function or class, a persistent id of another kind,
    or state written into an object)."""


class CheckpointFormatError(RuntimeError):
    """``load`` could not read a file: truncated, corrupt, of another format, or holding a kind of
    tensor somanet does not support."""


# --------------------------------------------------------------------------- dtypes
# PyTorch dtype name -> NumPy dtype (None: the dtype is read but converted, see _typed_array).
_NUMPY_OF = {
    "float32": np.dtype(np.float32), "float64": np.dtype(np.float64), "float16": np.dtype(np.float16),
    "bfloat16": None,
    "int8": np.dtype(np.int8), "int16": np.dtype(np.int16), "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64), "uint8": np.dtype(np.uint8), "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32), "uint64": np.dtype(np.uint64), "bool": np.dtype(np.bool_),
    "complex64": np.dtype(np.complex64), "complex128": np.dtype(np.complex128),
}
_ITEMSIZE = {name: (2 if dt is None else dt.itemsize) for name, dt in _NUMPY_OF.items()}
# Aliases PyTorch also exports (torch.float, torch.long, ...); pickles use the canonical names.
_DTYPE_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
                  "short": "int16", "cfloat": "complex64", "cdouble": "complex128"}
# Dtypes PyTorch can write that have no NumPy counterpart: named in the error instead of "unknown".
_UNSUPPORTED_DTYPES = {"complex32", "chalf", "qint8", "qint32", "quint8", "quint4x2", "quint2x4",
                       "float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz", "float8_e8m0fnu",
                       "float4_e2m1fn_x2", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2",
                       *(f"uint{i}" for i in range(1, 8)), *(f"int{i}" for i in range(1, 8))}
# Legacy storage classes (torch.FloatStorage, ...) and the dtype of their elements.
_STORAGE_DTYPE = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16", "LongStorage": "int64",
    "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "BFloat16Storage": "bfloat16", "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
}
_UNSUPPORTED_STORAGES = {"QInt8Storage": "qint8", "QInt32Storage": "qint32", "QUInt8Storage": "quint8",
                         "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4",
                         "ComplexHalfStorage": "complex32"}
_STORAGE_OF = {dtype: name for name, dtype in _STORAGE_DTYPE.items()}
_TORCH_NAME_OF = {dt: name for name, dt in _NUMPY_OF.items() if dt is not None}

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # first pickle of PyTorch's non-zip format
PROTOCOL_VERSION = 1001
_ALIGNMENT = 64
_CHUNK = 1 << 24
_ARCHIVE = "archive"
_KEY_RE = re.compile(r"[0-9A-Za-z_-]{1,64}\Z")
_REFUSED_TAIL = "only tensors, storages, OrderedDicts and primitive types can be loaded (weights_only)"


def _describe(f):
    if isinstance(f, (str, bytes, os.PathLike)):
        return repr(os.fsdecode(f))
    name = getattr(f, "name", None)
    if isinstance(name, str):
        return repr(name)
    return f"<{type(f).__name__}>"


def _nn_module():
    """``somanet.nn.modules.module`` if it is imported (no Parameter or Module can exist otherwise)."""
    return sys.modules.get(__name__.rpartition(".")[0] + ".nn.modules.module")


# =========================================================================== save
class _Storage:
    """One storage to write: a byte range of one NumPy memory block, holding elements of one dtype."""

    __slots__ = ("root", "dtype", "start", "end", "key")

    def __init__(self, root, dtype, start, end):
        self.root, self.dtype, self.start, self.end, self.key = root, dtype, start, end, None

    @property
    def nbytes(self):
        return self.end - self.start

    def chunks(self):
        flat = self.root if self.root.flags.c_contiguous else self.root.T
        data = flat.reshape(-1).view(np.uint8)[self.start:self.end]
        for i in range(0, data.size, _CHUNK):
            yield memoryview(data[i:i + _CHUNK])


def _little_endian(arr):
    order = arr.dtype.byteorder
    if order == ">" or (order == "=" and sys.byteorder == "big"):
        return arr.astype(arr.dtype.newbyteorder("<"))
    return arr


def _contiguous_strides(shape):
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _root_of(arr):
    root = arr
    while isinstance(root.base, np.ndarray):
        root = root.base
    return root


class _Saver:
    """Checks an object, plans one storage per memory block its tensors view, then pickles it."""

    def __init__(self):
        self.tensors = {}      # id(tensor or ndarray) -> (array, storage, offset, shape, strides)
        self.blocks = {}       # (id(root), dtype) -> _Storage
        self.keep = []         # objects made here (copies, converted scalars) kept alive while saving
        self.seen = set()
        self.keys = []         # storages in the order their keys were given
        self.out = bytearray()
        self.memo = {}

    # ------------------------------------------------------------------ checking and planning
    def plan(self, obj, where="obj"):
        stack = [(obj, where)]
        while stack:
            o, where = stack.pop()
            kind = type(o)
            if o is None or kind in (bool, int, float, complex, str, bytes, bytearray):
                continue
            if isinstance(o, np.generic):
                value = o.item()
                if type(value) not in (bool, int, float, complex, str, bytes):
                    raise TypeError(f"somanet.save: cannot save {where}, a NumPy {o.dtype} scalar")
                continue
            if isinstance(o, np.dtype):
                self._torch_dtype_name(o, where)
                continue
            if id(o) in self.seen:
                continue
            if isinstance(o, (Tensor, np.ndarray)):
                self.seen.add(id(o))
                self._plan_tensor(o, where)
                continue
            if kind in (list, tuple, set):
                self.seen.add(id(o))
                stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(o))))
                continue
            if kind in (dict, OrderedDict):
                self.seen.add(id(o))
                items = list(o.items())
                if kind is OrderedDict and vars(o):
                    items += [(k, v) for k, v in vars(o).items()]
                for k, v in reversed(items):
                    stack.append((v, f"{where}[{k!r}]"))
                    stack.append((k, f"a key of {where}"))
                continue
            raise TypeError(self._refusal(o, where))

    @staticmethod
    def _refusal(o, where):
        name = type(o).__name__
        nn = _nn_module()
        if nn is not None and isinstance(o, nn.Module):
            return (f"somanet.save: cannot save {where}, a whole {name} module: save its parameters and buffers "
                    f"instead with somanet.save(model.state_dict(), path), and restore them with "
                    f"model.load_state_dict(somanet.load(path))")
        if callable(getattr(type(o), "state_dict", None)):
            return (f"somanet.save: cannot save {where}, a {name} object: save {name}.state_dict() instead and "
                    f"restore it with load_state_dict()")
        if isinstance(o, frozenset):
            return (f"somanet.save: cannot save {where}, a frozenset (torch.load(weights_only=True) cannot read "
                    f"one); use a set or a tuple")
        return (f"somanet.save: cannot save {where} of type {type(o).__module__}.{type(o).__qualname__}: only "
                f"tensors, NumPy arrays, dicts, OrderedDicts, lists, tuples, sets and Python scalars (None, bool, "
                f"int, float, complex, str, bytes) can be saved")

    @staticmethod
    def _torch_dtype_name(dtype, where):
        name = _TORCH_NAME_OF.get(np.dtype(dtype).newbyteorder("="))
        if name is None:
            raise TypeError(f"somanet.save: cannot save {where}: dtype {dtype} has no PyTorch counterpart")
        return name

    def _plan_tensor(self, t, where):
        arr = t.array if isinstance(t, Tensor) else t
        if not isinstance(arr, np.ndarray):
            arr = np.asarray(arr.get() if hasattr(arr, "get") else arr)
        self._torch_dtype_name(arr.dtype, where)
        arr = _little_endian(arr)
        self.keep.append(arr)
        placed = self._place(arr)
        if placed is None:
            arr = np.array(arr, order="C", copy=True)
            self.keep.append(arr)
            placed = self._place(arr)
        root, start, extent, strides = placed
        key = (id(root), arr.dtype.str)
        block = self.blocks.get(key)
        if block is None:
            block = self.blocks[key] = _Storage(root, arr.dtype, start, extent)
        else:
            block.start, block.end = min(block.start, start), max(block.end, extent)
        self.tensors[id(t)] = (arr, block, start, tuple(arr.shape), strides)

    def _place(self, arr):
        """Where ``arr`` lies in the memory block it views: ``(root, start byte, end byte, element
        strides)``, or None when it cannot be described as a PyTorch view of that block."""
        if arr.size == 0:
            root = np.empty(0, dtype=arr.dtype)
            self.keep.append(root)
            return root, 0, 0, _contiguous_strides(arr.shape)
        root = _root_of(arr)
        if not (root.flags.c_contiguous or root.flags.f_contiguous) or root.dtype.hasobject:
            return None
        size = arr.itemsize
        start = arr.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        if start < 0 or start % size:
            return None
        default = _contiguous_strides(arr.shape)
        strides, end = [], start + size
        for n, s, d in zip(arr.shape, arr.strides, default):
            if n == 1:
                strides.append(d)
                continue
            if s < 0 or s % size:
                return None
            strides.append(s // size)
            end += (n - 1) * s
        if end > root.nbytes:
            return None
        return root, start, end, tuple(strides)

    # ------------------------------------------------------------------ pickling (protocol 2)
    def pickle(self, obj):
        self.out += b"\x80\x02"
        self._save(obj)
        self.out += b"."
        return bytes(self.out)

    def _memoize(self, obj):
        index = len(self.memo)
        self.memo[id(obj)] = index
        self.out += b"q" + bytes([index]) if index < 256 else b"r" + struct.pack("<I", index)

    def _get(self, index):
        self.out += b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index)

    def _global(self, module, name):
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def _str(self, s):
        data = s.encode("utf-8", "surrogatepass")
        self.out += b"X" + struct.pack("<I", len(data)) + data

    def _int(self, v):
        if 0 <= v < 256:
            self.out += b"K" + bytes([v])
        elif 0 <= v < 65536:
            self.out += b"M" + struct.pack("<H", v)
        elif -(1 << 31) <= v < (1 << 31):
            self.out += b"J" + struct.pack("<i", v)
        else:
            data = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
            if len(data) < 256:
                self.out += b"\x8a" + bytes([len(data)]) + data
            else:
                self.out += b"\x8b" + struct.pack("<i", len(data)) + data

    def _tuple(self, items):
        if not items:
            self.out += b")"
            return
        if len(items) > 3:
            self.out += b"("
        for v in items:
            self._save(v)
        self.out += b"t" if len(items) > 3 else (b"\x85", b"\x86", b"\x87")[len(items) - 1]

    def _items(self, pairs):
        for i in range(0, len(pairs), 1000):
            batch = pairs[i:i + 1000]
            if len(batch) > 1:
                self.out += b"("
            for k, v in batch:
                self._save(k)
                self._save(v)
            self.out += b"u" if len(batch) > 1 else b"s"

    def _appends(self, items):
        for i in range(0, len(items), 1000):
            batch = items[i:i + 1000]
            if len(batch) > 1:
                self.out += b"("
            for v in batch:
                self._save(v)
            self.out += b"e" if len(batch) > 1 else b"a"

    def _save(self, o):
        kind = type(o)
        if o is None:
            self.out += b"N"
        elif kind is bool:
            self.out += b"\x88" if o else b"\x89"
        elif kind is int:
            self._int(o)
        elif kind is float:
            self.out += b"G" + struct.pack(">d", o)
        elif kind is str:
            self._str(o)
        elif kind is bytes:
            self._global("_codecs", "encode")
            self._str(o.decode("latin1"))
            self._str("latin1")
            self.out += b"\x86R"
        elif kind is bytearray:
            self._global("__builtin__", "bytearray")
            self._save(bytes(o))
            self.out += b"\x85R"
        elif kind is complex:
            self._global("__builtin__", "complex")
            self.out += b"G" + struct.pack(">d", o.real) + b"G" + struct.pack(">d", o.imag) + b"\x86R"
        elif isinstance(o, np.generic):
            self._save(o.item())
        elif isinstance(o, np.dtype):
            self._global("torch", self._torch_dtype_name(o, "a dtype"))
        elif id(o) in self.memo:
            self._get(self.memo[id(o)])
        elif kind is tuple:
            self._tuple(o)
        elif kind is list:
            self.out += b"]"
            self._memoize(o)
            self._appends(o)
        elif kind is dict:
            self.out += b"}"
            self._memoize(o)
            self._items(list(o.items()))
        elif kind is OrderedDict:
            self._global("collections", "OrderedDict")
            self.out += b")R"
            self._memoize(o)
            self._items(list(o.items()))
            if vars(o):
                self.out += b"}"
                self._items(list(vars(o).items()))
                self.out += b"b"
        elif kind is set:
            self._global("__builtin__", "set")
            self.out += b"]"  # a list made here: written without a memo entry
            self._appends(list(o))
            self.out += b"\x85R"
            self._memoize(o)
        else:  # a Tensor, Parameter or ndarray, planned by plan()
            self._save_tensor(o)

    def _save_tensor(self, t):
        nn = _nn_module()
        if nn is not None and isinstance(t, nn.Parameter):
            self._global("torch._utils", "_rebuild_parameter")
            self.out += b"("
            self._tensor_reduce(t, False)
            self.out += b"\x88" if t.requires_grad else b"\x89"
            self._empty_ordered_dict()
            self.out += b"tR"
        else:
            self._tensor_reduce(t, bool(getattr(t, "requires_grad", False)))
        self._memoize(t)

    def _empty_ordered_dict(self):
        self._global("collections", "OrderedDict")
        self.out += b")R"

    def _tensor_reduce(self, t, requires_grad):
        arr, block, start, shape, strides = self.tensors[id(t)]
        if block.key is None:
            block.key = str(len(self.keys))
            self.keys.append(block)
        name = _TORCH_NAME_OF[arr.dtype.newbyteorder("=")]
        legacy = _STORAGE_OF.get(name)
        self._global("torch._utils", "_rebuild_tensor_v2" if legacy else "_rebuild_tensor_v3")
        self.out += b"(("
        self._str("storage")
        if legacy:
            self._global("torch", legacy)
        else:
            self._global("torch.storage", "UntypedStorage")
        self._str(block.key)
        self._str("cpu")
        self._int(block.nbytes // arr.itemsize if legacy else block.nbytes)
        self.out += b"tQ"
        self._int((start - block.start) // arr.itemsize)
        self._tuple(shape)
        self._tuple(strides)
        self.out += b"\x88" if requires_grad else b"\x89"
        self._empty_ordered_dict()
        if not legacy:
            self._global("torch", name)
        self.out += b"tR"


def _write_archive(fh, data_pkl, storages):
    start = fh.tell()
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        def record(name, chunks, size):
            info = zipfile.ZipInfo(f"{_ARCHIVE}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = size
            zip64 = size * 1.05 > zipfile.ZIP64_LIMIT  # as zipfile decides when opening the record
            # The record's data starts after the 30-byte local header, the name and the extra fields:
            # a padding field ('FB', as PyTorch's writer uses) aligns it to 64 bytes from the archive start.
            header = 30 + len(info.filename.encode("utf-8")) + 4 + (20 if zip64 else 0)
            pad = -(fh.tell() - start + header) % _ALIGNMENT
            info.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad
            with zf.open(info, "w", force_zip64=zip64) as out:
                for chunk in chunks:
                    out.write(chunk)

        record("data.pkl", [data_pkl], len(data_pkl))
        record(".format_version", [b"1"], 1)
        record(".storage_alignment", [str(_ALIGNMENT).encode()], len(str(_ALIGNMENT)))
        record("byteorder", [b"little"], 6)
        for storage in storages:
            record(f"data/{storage.key}", storage.chunks(), storage.nbytes)
        record("version", [b"3\n"], 2)
        digest = hashlib.sha256()
        for info in zf.infolist():
            digest.update(info.filename.encode() + struct.pack("<IQ", info.CRC, info.file_size))
        serial = str(int(digest.hexdigest(), 16) % 10 ** 40).zfill(40).encode()
        record(".data/serialization_id", [serial], len(serial))


def _atomic_write(path, write):
    """Write a file through ``write(fileobj)`` so that readers see the old file or the whole new one."""
    path = os.fspath(path)
    if os.path.islink(path):
        path = os.path.realpath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)  # keep the mode of a file being replaced
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        try:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)


def save(obj, f):
    """Save tensors, state dicts and nested containers to ``f`` in PyTorch's zip checkpoint format.

    Args:
        obj: a tensor, a ``Parameter``, a NumPy array, or dicts, OrderedDicts, lists, tuples and sets of
            them and of Python scalars (None, bool, int, float, complex, str, bytes) and dtypes, such as
            ``model.state_dict()`` or ``optimizer.state_dict()``. A whole module, an optimizer or any
            other object is refused: save its ``state_dict()``.
        f: a path (str or os.PathLike) or a binary file object open for writing. A path is written
            atomically: to a temporary file in the same directory, synced, then renamed over ``f``.

    The file loads with ``torch.load(f, weights_only=True)`` and with ``somanet.load(f)``. Tensors keep
    their dtype, shape and strides; tensors that view the same memory share one storage, which holds only
    the bytes they span. Arrays with negative strides are saved as contiguous copies. NumPy arrays load as
    tensors and NumPy scalars as Python numbers.
    """
    saver = _Saver()
    saver.plan(obj)
    data_pkl = saver.pickle(obj)

    def write(fh):
        _write_archive(fh, data_pkl, saver.keys)

    if isinstance(f, (str, bytes, os.PathLike)):
        _atomic_write(f, write)
        return
    if not callable(getattr(f, "write", None)):
        raise TypeError(f"somanet.save: f must be a path or a binary file object open for writing, "
                        f"got {type(f).__name__}")
    seekable = getattr(f, "seekable", None)
    if callable(seekable) and seekable():
        write(f)
    else:
        buffer = io.BytesIO()
        write(buffer)
        f.write(buffer.getvalue())
    if callable(getattr(f, "flush", None)):
        f.flush()


# =========================================================================== load
class _Allowed:
    """A name from the allow-list, as the unpickler hands it out: calls a somanet function that checks
    its arguments. It refuses to have state set on it (pickle's BUILD)."""

    __slots__ = ("name", "fn")

    def __init__(self, name, fn):
        self.name, self.fn = name, fn

    def __call__(self, *args):
        return self.fn(*args)

    def __setstate__(self, state):
        raise UnsafeLoadError(f"somanet.load: refusing to set state on '{self.name}'")

    def __repr__(self):
        return f"<{self.name}>"


class _Marker:
    """A storage type, dtype or class named in the pickle: only meaningful as an argument."""

    __slots__ = ("name", "value")

    def __init__(self, name, value):
        self.name, self.value = name, value

    def __setstate__(self, state):
        raise UnsafeLoadError(f"somanet.load: refusing to set state on '{self.name}'")

    def __repr__(self):
        return f"<{self.name}>"


class _StorageType(_Marker):
    __slots__ = ()


class _Dtype(_Marker):
    __slots__ = ()


class _Class(_Marker):
    __slots__ = ()


class _LoadedStorage:
    """The bytes of one storage read from a checkpoint, with a typed view of them per dtype."""

    __slots__ = ("key", "raw", "dtype", "byteorder", "location", "views")

    def __init__(self, key, raw, dtype, byteorder, location):
        self.key, self.raw, self.dtype, self.byteorder, self.location = key, raw, dtype, byteorder, location
        self.views = {}

    def typed(self, dtype):
        """The storage as a 1-d native-order array of ``dtype`` (bfloat16 becomes float32, exactly)."""
        arr = self.views.get(dtype)
        if arr is None:
            order = "<" if self.byteorder == "little" else ">"
            source = np.dtype(np.uint16 if dtype == "bfloat16" else _NUMPY_OF[dtype]).newbyteorder(order)
            count = self.raw.nbytes // source.itemsize
            arr = self.raw[:count * source.itemsize].view(source)
            if dtype == "bfloat16":
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            elif not arr.dtype.isnative:
                arr = arr.astype(arr.dtype.newbyteorder("="))
            self.views[dtype] = arr
        return arr

    # What map_location callables commonly call on the storage they are given.
    def cpu(self):
        return self

    def cuda(self, device=None, *args, **kwargs):
        _check_device("cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else str(device)))

    def to(self, device=None, *args, **kwargs):
        if device is not None:
            _check_device(str(device))
        return self

    def nbytes(self):
        return self.raw.nbytes

    def __setstate__(self, state):
        raise UnsafeLoadError("somanet.load: refusing to set state on a storage")

    def __repr__(self):
        return f"<storage {self.key!r}: {self.raw.nbytes} bytes of {self.dtype}>"


def _check_device(device):
    text = str(device).strip()
    kind, _, index = text.partition(":")
    if kind == "cpu" and (not index or index.isdigit()):
        return
    if re.fullmatch(r"[A-Za-z_]+", kind or "") and (not index or index.isdigit()):
        raise RuntimeError(f"somanet.load: cannot load tensors onto device '{text}': somanet keeps every tensor "
                           f"on the CPU and has no '{kind}' device; pass map_location='cpu' (or leave it out)")
    raise ValueError(f"somanet.load: map_location names an unknown device {text!r}; use 'cpu'")


def _device_string(value):
    if isinstance(value, bytes):
        value = value.decode("ascii")
    return str(value)


class _Loader:
    """One ``load`` call: the allow-list, the storages read so far and the tensors to fill in."""

    def __init__(self, desc, map_location, byteorder="little"):
        self.desc = desc
        self.map_location = map_location
        self.byteorder = byteorder
        self.read_storage = None          # key, nbytes -> raw uint8 array (set by the format reader)
        self.storages = {}
        # Tensors are made while unpickling with this array and get their own in finish(), once every
        # storage has been read (the legacy format stores them after the pickle).
        self.placeholder = np.empty(0, dtype=np.float32)
        self.made = {}                    # id(tensor) -> [tensor, snapshot of its slots, spec]
        self.pending = []                 # tensors in creation order (a Parameter after its data)
        self.globals = self._allow_list()

    # ------------------------------------------------------------------ the allow-list
    def _allow_list(self):
        table = {}

        def allow(name, fn):
            table[name] = _Allowed(name, fn)

        allow("torch._utils._rebuild_tensor", self._rebuild_tensor)
        allow("torch._utils._rebuild_tensor_v2", self._rebuild_tensor_v2)
        allow("torch._utils._rebuild_tensor_v3", self._rebuild_tensor_v3)
        allow("torch._utils._rebuild_parameter", self._rebuild_parameter)
        allow("torch._utils._rebuild_parameter_with_state", self._rebuild_parameter_with_state)
        allow("torch._tensor._rebuild_from_type_v2", self._rebuild_from_type_v2)
        allow("collections.OrderedDict", _ordered_dict)
        allow("collections.Counter", _counter)
        allow("torch.Size", _size)
        allow("torch.device", _device)
        allow("_codecs.encode", _encode)
        allow("builtins.set", _set)
        allow("builtins.frozenset", _frozenset)
        allow("builtins.bytearray", _bytearray)
        allow("builtins.bytes", _bytes)
        allow("builtins.complex", _complex)
        for module in ("torch", "torch.cuda"):
            for name, dtype in list(_STORAGE_DTYPE.items()) + list(_UNSUPPORTED_STORAGES.items()):
                table[f"{module}.{name}"] = _StorageType(f"{module}.{name}", dtype)
        for name in ("torch.storage.UntypedStorage", "torch.UntypedStorage", "torch.storage.TypedStorage",
                     "torch.TypedStorage"):
            table[name] = _StorageType(name, "uint8")
        for name in list(_NUMPY_OF) + list(_DTYPE_ALIASES) + sorted(_UNSUPPORTED_DTYPES):
            table[f"torch.{name}"] = _Dtype(f"torch.{name}", _DTYPE_ALIASES.get(name, name))
        table["torch.Tensor"] = _Class("torch.Tensor", "tensor")
        table["torch.nn.parameter.Parameter"] = _Class("torch.nn.parameter.Parameter", "parameter")
        return table

    def refuse(self, what, detail=_REFUSED_TAIL):
        return UnsafeLoadError(f"somanet.load: refusing to load {what} from {self.desc}: {detail}")

    def find_class(self, module, name):
        module = {"__builtin__": "builtins", "copy_reg": "copyreg", "torch.tensor": "torch._tensor"}.get(module, module)
        full = f"{module}.{name}"
        found = self.globals.get(full)
        if found is not None:
            return found
        if module.startswith("torch.nn.modules") or module.startswith("torch.optim") or module == "__main__":
            raise self.refuse(f"'{full}'", _REFUSED_TAIL + "; the file seems to hold a whole pickled object "
                              "(torch.save(model)): in PyTorch, save model.state_dict() instead")
        if module == "torch._utils" and name.startswith("_rebuild_"):
            raise self.refuse(f"'{full}'", _REFUSED_TAIL + "; it rebuilds a kind of tensor somanet does not "
                              "support (sparse, quantized, nested, meta or on another backend)")
        raise self.refuse(f"'{full}'")

    # ------------------------------------------------------------------ storages
    def persistent_load(self, pid, legacy=False):
        if type(pid) is not tuple or not pid:
            raise self.refuse(f"persistent id {pid!r}", "only storages can be referenced by a persistent id")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":
            raise self.refuse("a pickled torch.nn.Module", "the file holds a whole model saved with "
                              "torch.save(model); somanet loads state dicts only: in PyTorch, save "
                              "model.state_dict() instead")
        if kind != "storage" or len(pid) != (6 if legacy else 5):
            raise self.refuse(f"persistent id {pid!r}", "only storages can be referenced by a persistent id")
        storage_type, key, location, numel = pid[1:5]
        if type(storage_type) is not _StorageType:
            raise self.refuse(f"a storage of type {storage_type!r}", "expected a torch storage type")
        key = _device_string(key)
        location = _device_string(location)
        if not _KEY_RE.match(key):
            raise CheckpointFormatError(f"somanet.load: {self.desc} names a storage {key!r}, which is not a "
                                        f"valid storage key (the file is corrupt or was crafted)")
        if type(numel) is not int or numel < 0:
            raise CheckpointFormatError(f"somanet.load: {self.desc}: storage {key!r} has an invalid size {numel!r}")
        dtype = storage_type.value
        if dtype not in _ITEMSIZE:
            raise CheckpointFormatError(f"somanet.load: {self.desc} holds a storage of dtype torch.{dtype}, which "
                                        f"somanet does not support")
        storage = self.storages.get(key)
        if storage is None:
            raw = self.read_storage(key, numel * _ITEMSIZE[dtype])
            storage = _LoadedStorage(key, raw, dtype, self.byteorder, location)
            self._place(storage, location)
            self.storages[key] = storage
        elif storage.raw.nbytes != numel * _ITEMSIZE[dtype] and not legacy:
            raise CheckpointFormatError(f"somanet.load: {self.desc}: storage {key!r} is declared with two sizes")
        if legacy and pid[5] is not None:
            return self._legacy_view(storage, dtype, pid[5])
        if storage.dtype == dtype:
            return storage
        # The same bytes seen as another dtype (an untyped storage shared by tensors of two dtypes).
        other = self.storages.get(f"{key}:{dtype}")
        if other is None:
            other = _LoadedStorage(storage.key, storage.raw, dtype, storage.byteorder, storage.location)
            other.views = storage.views  # keyed by dtype, so the typed arrays are shared
            self.storages[f"{key}:{dtype}"] = other
        return other

    def _legacy_view(self, storage, dtype, view):
        if type(view) is not tuple or len(view) != 3:
            raise CheckpointFormatError(f"somanet.load: {self.desc}: invalid storage view {view!r}")
        view_key, offset, size = view
        view_key = _device_string(view_key)
        size_of = _ITEMSIZE[dtype]
        if (type(offset) is not int or type(size) is not int or offset < 0 or size < 0
                or (offset + size) * size_of > storage.raw.nbytes):
            raise CheckpointFormatError(f"somanet.load: {self.desc}: storage view {view!r} lies outside its storage")
        found = self.storages.get("view:" + view_key)
        if found is None:
            found = _LoadedStorage(view_key, storage.raw[offset * size_of:(offset + size) * size_of], dtype,
                                   storage.byteorder, storage.location)
            self.storages["view:" + view_key] = found
        return found

    def _place(self, storage, location):
        ml = self.map_location
        if ml is None:
            return  # somanet has one device: tensors saved from a GPU load onto the CPU
        if isinstance(ml, dict):
            if location in ml:
                _check_device(_device_string(ml[location]))
            return
        if isinstance(ml, (str, bytes)) or not callable(ml):
            _check_device(_device_string(ml))
            return
        try:
            result = ml(storage, location)
        except Exception as exc:
            if str(exc).startswith("somanet.load:"):
                raise
            raise RuntimeError(f"somanet.load: the map_location function raised {type(exc).__name__}: {exc}") from exc
        if result is None or result is storage:
            return
        if isinstance(result, (str, bytes)):
            _check_device(_device_string(result))
            return
        raise TypeError(f"somanet.load: a map_location function must return the storage it was given, None or "
                        f"a device string, got {type(result).__name__}")

    # ------------------------------------------------------------------ tensors
    def _ints(self, value, what, allow_negative=False):
        if type(value) not in (tuple, list) or any(type(v) is not int for v in value):
            raise CheckpointFormatError(f"somanet.load: {self.desc}: a tensor's {what} is {value!r}, expected a "
                                        f"tuple of ints")
        if not allow_negative and any(v < 0 for v in value):
            raise CheckpointFormatError(f"somanet.load: {self.desc}: a tensor's {what} {value!r} is negative")
        return tuple(value)

    def _new(self, cls, spec):
        t = cls(self.placeholder) if cls is Tensor else cls(self.placeholder, requires_grad=False)
        self.made[id(t)] = [t, _snapshot(t), spec]
        self.pending.append(t)
        return t

    def _tensor(self, storage, offset, size, stride, requires_grad, dtype, metadata=None):
        if type(storage) is not _LoadedStorage:
            raise self.refuse("a tensor built on something other than a storage",
                              f"got {type(storage).__name__}")
        if type(offset) is not int or offset < 0:
            raise CheckpointFormatError(f"somanet.load: {self.desc}: a tensor's storage offset is {offset!r}")
        size = self._ints(size, "size")
        stride = self._ints(stride, "stride")
        if len(size) != len(stride):
            raise CheckpointFormatError(f"somanet.load: {self.desc}: a tensor has size {size} but strides {stride}")
        if type(requires_grad) is not bool:
            raise CheckpointFormatError(f"somanet.load: {self.desc}: requires_grad is {requires_grad!r}")
        if dtype in _UNSUPPORTED_DTYPES or dtype not in _ITEMSIZE:
            raise CheckpointFormatError(f"somanet.load: {self.desc} holds a tensor of dtype torch.{dtype}, which "
                                        f"somanet does not support (NumPy has no such type)")
        flags = {}
        if metadata is not None:
            if type(metadata) not in (dict, OrderedDict) or any(k not in ("conj", "neg") or type(v) is not bool
                                                                 for k, v in metadata.items()):
                raise CheckpointFormatError(f"somanet.load: {self.desc}: unknown tensor metadata {metadata!r}")
            flags = dict(metadata)
        spec = {"storage": storage, "offset": offset, "size": size, "stride": stride, "dtype": dtype,
                "requires_grad": requires_grad, "conj": flags.get("conj", False), "neg": flags.get("neg", False)}
        return self._new(Tensor, spec)

    def _rebuild_tensor(self, storage, offset, size, stride):
        return self._tensor(storage, offset, size, stride, False, getattr(storage, "dtype", None))

    def _rebuild_tensor_v2(self, storage, offset, size, stride, requires_grad, backward_hooks, metadata=None):
        return self._tensor(storage, offset, size, stride, requires_grad, getattr(storage, "dtype", None), metadata)

    def _rebuild_tensor_v3(self, storage, offset, size, stride, requires_grad, backward_hooks, dtype,
                           metadata=None):
        if type(dtype) is not _Dtype:
            raise self.refuse(f"a tensor of dtype {dtype!r}", "expected a torch dtype")
        return self._tensor(storage, offset, size, stride, requires_grad, dtype.value, metadata)

    def _ours(self, t):
        return isinstance(t, Tensor) and id(t) in self.made and self.made[id(t)][0] is t

    def _rebuild_parameter(self, data, requires_grad, backward_hooks):
        if not self._ours(data) or type(requires_grad) is not bool:
            raise self.refuse("a Parameter built from something other than a tensor", f"got {type(data).__name__}")
        from .nn.modules.module import Parameter

        return self._new(Parameter, {"data": data, "requires_grad": requires_grad})

    def _rebuild_parameter_with_state(self, data, requires_grad, backward_hooks, state):
        # The state holds Python attributes set on the parameter; somanet's Parameter has none.
        return self._rebuild_parameter(data, requires_grad, backward_hooks)

    def _rebuild_from_type_v2(self, func, new_type, args, state):
        if type(func) is not _Allowed or func.fn not in (self._rebuild_tensor, self._rebuild_tensor_v2,
                                                           self._rebuild_tensor_v3, self._rebuild_parameter,
                                                           self._rebuild_parameter_with_state):
            raise self.refuse(f"'{getattr(func, 'name', func)!s}' inside torch._tensor._rebuild_from_type_v2")
        if type(new_type) is not _Class or type(args) is not tuple:
            raise self.refuse(f"a tensor of type {new_type!r}", "only torch.Tensor and torch.nn.Parameter")
        result = func(*args)
        if new_type.value == "parameter" and not self._is_parameter(result):
            result = self._rebuild_parameter(result, self.made[id(result)][2].get("requires_grad", True), None)
        return result

    @staticmethod
    def _is_parameter(t):
        nn = _nn_module()
        return nn is not None and isinstance(t, nn.Parameter)

    # ------------------------------------------------------------------ finishing
    def finish(self, result):
        """Give every tensor made while unpickling its array, then check what the pickle returned."""
        for t in self.pending:
            entry = self.made[id(t)]
            if not _same(_snapshot(t), entry[1]):
                raise self.refuse("a tensor with state set on it", "the pickle writes into a tensor's internals "
                                  "(pickle BUILD), which torch.save never does")
            spec = entry[2]
            t.array = spec["data"].array if "data" in spec else self._array(spec)
            if spec["requires_grad"]:
                if t.array.dtype.kind not in "fc":
                    raise CheckpointFormatError(f"somanet.load: {self.desc}: a {t.array.dtype} tensor is marked "
                                                f"as requiring grad")
                t.requires_grad = True
        self.pending = []
        try:
            return _Checker(self).visit(result)
        except RecursionError:
            raise CheckpointFormatError(f"somanet.load: {self.desc}: the object is nested too deeply") from None

    def _array(self, spec):
        storage, offset, size, stride = spec["storage"], spec["offset"], spec["size"], spec["stride"]
        base = storage.typed(spec["dtype"])
        count = 1
        for n in size:
            count *= n
        if count == 0:
            arr = np.zeros(size, dtype=base.dtype)
        else:
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if last >= base.size:
                raise CheckpointFormatError(
                    f"somanet.load: {self.desc}: a tensor of size {size}, strides {stride} and offset {offset} "
                    f"reaches past the end of its storage ({base.size} elements); the file is corrupt")
            item = base.itemsize
            arr = np.ndarray(size, dtype=base.dtype, buffer=base, offset=offset * item,
                             strides=tuple(s * item for s in stride))
        if spec["conj"]:
            arr = np.conj(arr)
        if spec["neg"]:
            arr = np.negative(arr)
        return arr


def _snapshot(t):
    names = []
    for cls in type(t).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    values = tuple(getattr(t, n, None) for n in names if n not in ("__weakref__", "__dict__"))
    return values, tuple(getattr(t, "__dict__", {}))


def _same(a, b):
    return len(a[0]) == len(b[0]) and all(x is y for x, y in zip(a[0], b[0])) and a[1] == b[1]


class _Checker:
    """Walks a loaded object: only containers, scalars and the tensors made by this load may appear.
    Dtypes named in the pickle become somanet (NumPy) dtypes."""

    SCALARS = (type(None), bool, int, float, complex, str, bytes, bytearray)

    def __init__(self, loader):
        self.loader = loader
        self.memo = {}

    def visit(self, o):
        kind = type(o)
        if kind in self.SCALARS:
            return o
        if kind is _Dtype:
            if o.value not in _NUMPY_OF:
                raise CheckpointFormatError(f"somanet.load: {self.loader.desc} holds the dtype torch.{o.value}, "
                                            f"which somanet does not support")
            return _NUMPY_OF[o.value] or np.dtype(np.float32)
        if isinstance(o, Tensor) and self.loader._ours(o):
            return o
        if id(o) in self.memo:
            return self.memo[id(o)]
        if kind is list:
            self.memo[id(o)] = o
            for i, v in enumerate(o):
                new = self.visit(v)
                if new is not v:
                    o[i] = new
            return o
        if kind in (dict, OrderedDict, Counter):
            self.memo[id(o)] = o
            items = list(o.items())
            fixed = [(self.visit(k), self.visit(v)) for k, v in items]
            if any(a is not b or c is not d for (a, c), (b, d) in zip(items, fixed)):
                o.clear()
                for k, v in fixed:
                    o[k] = v
            extra = getattr(o, "__dict__", {})
            for name in list(extra):
                if hasattr(kind, name):
                    raise self.loader.refuse(f"an attribute {name!r} set on {kind.__name__}",
                                             "it would hide one of its methods")
                extra[name] = self.visit(extra[name])
            return o
        if kind in (tuple, set, frozenset):
            self.memo[id(o)] = o
            items = [self.visit(v) for v in o]
            if any(a is not b for a, b in zip(o, items)):
                new = kind(items)
                self.memo[id(o)] = new
                return new
            return o
        if kind is _LoadedStorage:
            raise self.loader.refuse("a bare storage", "somanet loads tensors, not storages on their own "
                                     "(save tensors rather than tensor.untyped_storage())")
        raise self.loader.refuse(f"an object of type {getattr(o, 'name', kind.__name__)}",
                                 _REFUSED_TAIL)


# Builtins the pickle may call, each limited to the arguments pickle itself writes.
def _ordered_dict(*args):
    if len(args) > 1 or (args and type(args[0]) not in (list, tuple, dict, OrderedDict)):
        raise UnsafeLoadError("somanet.load: collections.OrderedDict called with unexpected arguments")
    return OrderedDict(*args)


def _counter(*args):
    if len(args) > 1 or (args and type(args[0]) not in (dict, list, tuple)):
        raise UnsafeLoadError("somanet.load: collections.Counter called with unexpected arguments")
    return Counter(*args)


def _size(*args):
    if len(args) != 1 or type(args[0]) not in (tuple, list) or any(type(v) is not int for v in args[0]):
        raise UnsafeLoadError("somanet.load: torch.Size called with unexpected arguments")
    return tuple(args[0])


def _device(*args):
    if (not 1 <= len(args) <= 2 or type(args[0]) is not str
            or (len(args) == 2 and type(args[1]) not in (int, type(None)))):
        raise UnsafeLoadError("somanet.load: torch.device called with unexpected arguments")
    return args[0] if len(args) == 1 or args[1] is None else f"{args[0]}:{args[1]}"


def _encode(*args):
    if len(args) != 2 or type(args[0]) is not str or args[1] not in ("latin1", "latin-1"):
        raise UnsafeLoadError("somanet.load: _codecs.encode called with unexpected arguments")
    return args[0].encode("latin1")


def _set(*args):
    if len(args) > 1 or (args and type(args[0]) not in (list, tuple)):
        raise UnsafeLoadError("somanet.load: set called with unexpected arguments")
    return set(*args)


def _frozenset(*args):
    if len(args) > 1 or (args and type(args[0]) not in (list, tuple)):
        raise UnsafeLoadError("somanet.load: frozenset called with unexpected arguments")
    return frozenset(*args)


def _bytes(*args):
    if args:  # pickle writes b"" as bytes(); non-empty bytes go through _codecs.encode
        raise UnsafeLoadError("somanet.load: bytes called with unexpected arguments")
    return b""


def _bytearray(*args):
    if len(args) > 1 or (args and type(args[0]) is not bytes):
        raise UnsafeLoadError("somanet.load: bytearray called with unexpected arguments")
    return bytearray(*args)


def _complex(*args):
    if len(args) > 2 or any(type(v) not in (int, float) for v in args):
        raise UnsafeLoadError("somanet.load: complex called with unexpected arguments")
    return complex(*args)


class _Unpickler(pickle.Unpickler):
    """The standard unpickler with every name lookup and persistent id sent through the allow-list."""

    def __init__(self, file, loader, legacy=False):
        super().__init__(file)
        self._loader = loader
        self._legacy = legacy

    def find_class(self, module, name):
        return self._loader.find_class(module, name)

    def persistent_load(self, pid):
        return self._loader.persistent_load(pid, self._legacy)


# --------------------------------------------------------------------------- the two formats
def _load_zip(fh, loader):
    try:
        zf = zipfile.ZipFile(fh)
    except zipfile.BadZipFile as exc:
        raise CheckpointFormatError(f"somanet.load: {loader.desc} is truncated or is not a valid zip archive "
                                    f"({exc})") from None
    with zf:
        infos = zf.infolist()
        for info in infos:
            name = info.filename
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0] or "\\" in name:
                raise CheckpointFormatError(f"somanet.load: {loader.desc} holds an entry {name!r} that points "
                                            f"outside the archive; refusing to read it")
        if not infos or "/" not in infos[0].filename:
            raise CheckpointFormatError(f"somanet.load: {loader.desc} is a zip archive but not a checkpoint "
                                        f"written by torch.save or somanet.save (no <name>/data.pkl record)")
        prefix = infos[0].filename.split("/", 1)[0] + "/"
        names = {info.filename: info for info in infos}
        if prefix + "data.pkl" not in names:
            if prefix + "constants.pkl" in names:
                raise CheckpointFormatError(f"somanet.load: {loader.desc} is a TorchScript archive "
                                            f"(torch.jit.save); somanet reads checkpoints written by torch.save")
            raise CheckpointFormatError(f"somanet.load: {loader.desc} is a zip archive but not a checkpoint "
                                        f"written by torch.save or somanet.save (no {prefix}data.pkl record)")
        if prefix + "byteorder" in names:
            order = zf.read(prefix + "byteorder")
            if order not in (b"little", b"big"):
                raise CheckpointFormatError(f"somanet.load: {loader.desc} has an unknown byte order {order!r}")
            loader.byteorder = order.decode()
        archive_size = fh.seek(0, io.SEEK_END)

        def read_storage(key, nbytes):
            info = names.get(f"{prefix}data/{key}")
            if info is None:
                raise CheckpointFormatError(f"somanet.load: {loader.desc} has no record {prefix}data/{key} for a "
                                            f"storage its pickle uses; the file is truncated or corrupt")
            if info.file_size != nbytes:
                raise CheckpointFormatError(f"somanet.load: {loader.desc}: record data/{key} holds {info.file_size} "
                                            f"bytes, its storage needs {nbytes}; the file is corrupt")
            if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size or \
                    info.compress_size > archive_size:
                raise CheckpointFormatError(f"somanet.load: {loader.desc}: record data/{key} is larger than the "
                                            f"file; the file is truncated or corrupt")
            raw = np.empty(nbytes, dtype=np.uint8)
            view = memoryview(raw)
            with zf.open(info) as src:
                done = 0
                while done < nbytes:
                    chunk = src.read(min(_CHUNK, nbytes - done))
                    if not chunk:
                        raise CheckpointFormatError(f"somanet.load: {loader.desc}: record data/{key} is truncated")
                    view[done:done + len(chunk)] = chunk
                    done += len(chunk)
                src.read(1)  # reach the end of the record so its CRC is checked
            return raw

        loader.read_storage = read_storage
        data = zf.read(prefix + "data.pkl")
        result = _Unpickler(io.BytesIO(data), loader).load()
        return loader.finish(result)


def _load_legacy(fh, loader):
    """PyTorch's non-zip format: pickles of the magic number, the protocol version and system info, then
    the object, then the list of storage keys, then each storage as an int64 count and its raw bytes."""
    def next_pickle():
        return _Unpickler(fh, loader, legacy=True).load()

    try:
        magic = next_pickle()
    except UnsafeLoadError:
        raise
    except Exception as exc:
        raise CheckpointFormatError(f"somanet.load: {loader.desc} is not a checkpoint written by torch.save or "
                                    f"somanet.save ({type(exc).__name__}: {exc})") from None
    if magic != MAGIC_NUMBER or type(magic) is not int:
        raise CheckpointFormatError(f"somanet.load: {loader.desc} is a pickle but not a checkpoint written by "
                                    f"torch.save or somanet.save (wrong magic number)")
    version = next_pickle()
    if version != PROTOCOL_VERSION:
        raise CheckpointFormatError(f"somanet.load: {loader.desc}: unsupported format version {version!r}")
    info = next_pickle()
    if type(info) is dict and info.get("little_endian") is False:
        loader.byteorder = "big"
    here = fh.tell()
    end = fh.seek(0, io.SEEK_END) - here
    fh.seek(here)
    declared = []

    def allocate(key, nbytes):  # filled once the pickle has been read
        declared.append(key)
        if nbytes > end:
            raise CheckpointFormatError(f"somanet.load: {loader.desc}: storage {key!r} needs {nbytes} bytes, more "
                                        f"than the whole file; the file is truncated or corrupt")
        return np.empty(nbytes, dtype=np.uint8)

    loader.read_storage = allocate
    result = next_pickle()
    keys = next_pickle()
    if type(keys) is not list or any(type(k) not in (str, bytes) for k in keys):
        raise CheckpointFormatError(f"somanet.load: {loader.desc}: the list of storage keys is corrupt")
    keys = [_device_string(k) for k in keys]
    missing = [k for k in declared if k not in keys]
    if missing or len(set(keys)) != len(keys):
        raise CheckpointFormatError(f"somanet.load: {loader.desc}: the list of storage keys does not match the "
                                    f"storages the object uses; the file is corrupt")
    for key in keys:
        storage = loader.storages.get(key)
        if storage is None:
            raise CheckpointFormatError(f"somanet.load: {loader.desc}: storage {key!r} is listed but never used")
        head = fh.read(8)
        if len(head) != 8:
            raise CheckpointFormatError(f"somanet.load: {loader.desc} is truncated (storage {key!r} is missing)")
        (count,) = struct.unpack("<q", head)
        size = _ITEMSIZE[storage.dtype]
        if count * size != storage.raw.nbytes:
            raise CheckpointFormatError(f"somanet.load: {loader.desc}: storage {key!r} holds {count} elements, "
                                        f"its tensors expect {storage.raw.nbytes // size}; the file is corrupt")
        if fh.readinto(memoryview(storage.raw)) != storage.raw.nbytes:
            raise CheckpointFormatError(f"somanet.load: {loader.desc} is truncated (storage {key!r} is cut short)")
    return loader.finish(result)


def _target_device(map_location):
    """The available device other than the CPU that a device-string ``map_location`` names, else None."""
    from . import devices

    if isinstance(map_location, (str, bytes)) or hasattr(map_location, "type"):
        text = _device_string(map_location)
        kind = text.partition(":")[0]
        if kind != "cpu" and (kind in devices.AVAILABLE or (kind == "cuda" and devices._find("cuda") is not None)):
            return devices.resolve(text, "somanet.load")
    return None


def _to_device(obj, device):
    """``obj`` with every tensor in it (in dicts, lists and tuples) moved to ``device`` in place."""
    from . import devices

    if isinstance(obj, Tensor):
        obj.array = devices.move(obj.array, device)
    elif isinstance(obj, dict):
        for value in obj.values():
            _to_device(value, device)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _to_device(value, device)
    return obj


def _check_map_location(map_location):
    if map_location is None or isinstance(map_location, dict) or callable(map_location):
        return
    if _target_device(map_location) is not None:
        return
    if isinstance(map_location, (str, bytes)) or hasattr(map_location, "type"):
        _check_device(_device_string(map_location))
        return
    raise TypeError(f"somanet.load: map_location must be None, a device string such as 'cpu', a dict or a "
                    f"function, got {type(map_location).__name__}")


def load(f, map_location=None, *, weights_only=True):
    """Load tensors, state dicts and nested containers saved by ``torch.save`` or ``somanet.save``.

    Args:
        f: a path (str or os.PathLike) or a binary file object open for reading.
        map_location: where to put the tensors: ``None`` (tensors saved from any device load onto the
            CPU), ``'cpu'`` or ``torch.device('cpu')``, an available device (``'cuda'`` with the CuPy
            backend: loaded on the CPU, then copied there), a dict mapping saved locations to new ones
            (``{'cuda:0': 'cpu'}``), or a function ``(storage, location)`` returning the storage, None or a
            device string. Asking for a device that is not available (``'mps'``) raises an error naming it.
        weights_only: must be True (the default; None means True as in PyTorch). somanet never unpickles
            arbitrary objects, so ``weights_only=False`` is refused rather than silently ignored.

    Returns the saved object: tensors become somanet ``Tensor`` objects (views that shared a storage
    share memory), a saved ``torch.nn.Parameter`` becomes a ``somanet.nn.Parameter``, ``torch.Size``
    becomes a tuple, ``torch.device`` a string and torch dtypes somanet dtypes. bfloat16 tensors load as
    float32 (exactly: every bfloat16 value is a float32 value); dtypes NumPy lacks (float8, complex32,
    quantized) raise ``CheckpointFormatError`` naming the dtype.

    Raises:
        UnsafeLoadError (a ``pickle.UnpicklingError``): the pickle names a function or class other than
            those that rebuild tensors (``os.system``, ``builtins.eval``, a pickled model class...). Nothing
            from the file is ever called.
        CheckpointFormatError (a ``RuntimeError``): the file is truncated, corrupt or of another format.
    """
    if weights_only is False:
        raise ValueError("somanet.load: weights_only=False is not supported: somanet never unpickles arbitrary "
                         "Python objects, only tensors, state dicts and containers of primitive values. Leave "
                         "weights_only at its default (True); for a file holding other objects, load it with "
                         "torch.load and save its state_dict() instead")
    if weights_only not in (True, None):
        raise TypeError(f"somanet.load: weights_only must be True, got {weights_only!r}")
    _check_map_location(map_location)
    target = _target_device(map_location)
    if target is not None:  # read onto the CPU, then copy every tensor to the device asked for
        return _to_device(load(f, None, weights_only=weights_only), target)
    desc = _describe(f)
    if isinstance(f, (str, bytes, os.PathLike)):
        with open(f, "rb") as fh:
            return _load_stream(fh, desc, map_location)
    if not callable(getattr(f, "read", None)):
        raise TypeError(f"somanet.load: f must be a path or a binary file object open for reading, got "
                        f"{type(f).__name__}")
    seekable = getattr(f, "seekable", None)
    if not (callable(seekable) and seekable()):
        f = io.BytesIO(f.read())
    return _load_stream(f, desc, map_location)


def _load_stream(fh, desc, map_location):
    start = fh.tell()
    head = fh.read(512)
    if isinstance(head, str):
        raise TypeError(f"somanet.load: {desc} is open in text mode; open it with mode 'rb'")
    fh.seek(start)
    loader = _Loader(desc, map_location)
    if not head:
        raise CheckpointFormatError(f"somanet.load: {desc} is empty")
    try:
        if head[:4] == b"PK\x03\x04":
            return _load_zip(fh, loader)
        if len(head) >= 262 and head[257:262] == b"ustar":
            raise CheckpointFormatError(f"somanet.load: {desc} uses the tar format of PyTorch before 0.4, which "
                                        f"somanet does not read (torch.load(weights_only=True) refuses it too); "
                                        f"load it with an old PyTorch and save it again")
        if head[:1] != b"\x80":
            raise CheckpointFormatError(f"somanet.load: {desc} is not a checkpoint written by torch.save or "
                                        f"somanet.save (it starts with {head[:8]!r})")
        return _load_legacy(fh, loader)
    except (UnsafeLoadError, CheckpointFormatError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, struct.error, zipfile.BadZipFile, KeyError,
            IndexError, AttributeError, OverflowError, UnicodeDecodeError) as exc:
        if str(exc).startswith("somanet.load:"):
            raise
        raise CheckpointFormatError(f"somanet.load: {desc} is truncated, corrupt or not a checkpoint written by "
                                    f"torch.save or somanet.save ({type(exc).__name__}: {exc})") from exc
