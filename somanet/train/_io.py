"""Atomic file writes: every file the training system writes goes through here.

A reader (or a crash) never sees a half-written file: data goes to a temporary file in the same
directory, is flushed to disk, then renamed over the target with ``os.replace``, which is atomic on
POSIX and Windows as long as both paths are on the same file system (hence "same directory").
"""
import hashlib
import os
import re
import secrets
import shutil
import socket
import threading
import time

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_replace_dir", "atomic_replace_file_from",
           "temporary_sibling", "hidden_dir_name", "parse_hidden_dir_name", "writer_is_gone", "stale_hidden_dirs"]


def temporary_sibling(path, suffix=""):
    """A new, empty temporary file next to ``path`` (same directory); returns its name."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    # os.open with mode 0o666 (not mkstemp's 0o600): the finished file gets the umask's usual permissions.
    for _ in range(100):
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {path}")


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically."""
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_replace_file_from(tmp, path):
    """Move the finished temporary file ``tmp`` (a ``temporary_sibling`` of ``path``) onto ``path``."""
    try:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


def atomic_replace_dir(target, write_contents):
    """Build a directory with ``write_contents(tmp_dir)`` then move it to ``target`` in one rename.

    If ``target`` already exists it is first renamed aside and deleted only after the new directory
    is in place. Between those two renames ``target`` is absent for an instant; a process killed
    there leaves the old directory and the complete new one under hidden names (see
    ``hidden_dir_name``), from which ``stale_hidden_dirs`` and the checkpoint loader recover.
    """
    target = os.path.abspath(target)
    parent = os.path.dirname(target)
    base = os.path.basename(target)
    os.makedirs(parent, exist_ok=True)
    tmp = _make_hidden_dir(parent, base, "tmp")
    old = None
    try:
        write_contents(tmp)
        if os.path.lexists(target):
            old = os.path.join(parent, hidden_dir_name(base, "old"))
            _register(old)
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _unregister(tmp)
        if old is not None and not os.path.lexists(target) and os.path.isdir(old):
            # Put the previous directory back rather than leave no target at all.
            try:
                os.replace(old, target)
            except OSError:
                pass
        if old is not None:
            _unregister(old)  # no longer in use: a later save or load recovers or deletes it
        raise
    _unregister(tmp)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
        _unregister(old)


# --------------------------------------------------------------------------- hidden directories of a swap
# ``atomic_replace_dir`` writes into ``.NAME.tmp-PID-HOST-RANDOM`` and moves the previous directory to
# ``.NAME.old-PID-HOST-RANDOM``: PID is the writing process and HOST a short hash of its host name, so
# that a later process can tell a directory left behind by a killed writer (its process is gone) from
# one that a live writer is still using.

#: A hidden directory whose writer cannot be checked (another host, another platform, or a name from
#: an older somanet without the writer's process id) counts as abandoned once nothing in it has
#: changed for this long.
UNKNOWN_OWNER_STALE_SECONDS = 24 * 3600

_HIDDEN_RE = re.compile(r"^\.(?P<base>.+)\.(?P<kind>tmp|old)-(?P<pid>[0-9]+)-(?P<host>[0-9a-f]{8})-[0-9a-f]{8}$")
# mkdtemp's names, as written before the writer's id was part of the name.
_LEGACY_RE = re.compile(r"^\.(?P<base>.+)\.(?P<kind>tmp|old)-[a-z0-9_]{8}$")

_active = set()  # hidden directories this process is writing or swapping right now
_active_lock = threading.Lock()


def _host_tag():
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def hidden_dir_name(base, kind):
    """The name of a new hidden ``kind`` (``"tmp"`` or ``"old"``) directory for the target ``base``."""
    return f".{base}.{kind}-{os.getpid()}-{_host_tag()}-{secrets.token_hex(4)}"


def parse_hidden_dir_name(name):
    """``(base, kind, pid, host)`` of a hidden swap directory's name (``pid`` and ``host`` are None
    for an old-style name), or None for any other name."""
    m = _HIDDEN_RE.match(name)
    if m:
        return m.group("base"), m.group("kind"), int(m.group("pid")), m.group("host")
    m = _LEGACY_RE.match(name)
    if m:
        return m.group("base"), m.group("kind"), None, None
    return None


def _register(path):
    with _active_lock:
        _active.add(os.path.abspath(path))


def _unregister(path):
    with _active_lock:
        _active.discard(os.path.abspath(path))


def _make_hidden_dir(parent, base, kind):
    while True:
        path = os.path.join(parent, hidden_dir_name(base, kind))
        _register(path)
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            _unregister(path)
        except BaseException:
            _unregister(path)
            raise


def _pid_alive(pid):
    """True / False where it can be told, None where it cannot (not POSIX)."""
    if os.name != "posix":
        return None
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return None
    try:  # a killed process that nobody has reaped yet still answers; it writes nothing more
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        if state in (b"Z", b"X"):
            return False
    except (OSError, IndexError):
        pass
    return True


def _last_change(path):
    newest = os.lstat(path).st_mtime
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
            except OSError:
                pass
    return newest


def writer_is_gone(path):
    """Whether the hidden swap directory ``path`` was left behind: its writer no longer runs.

    A directory of this process counts as left behind only when no write of this process uses it
    (a process id can come back after a restart). One whose writer cannot be checked counts as left
    behind after ``UNKNOWN_OWNER_STALE_SECONDS`` without a change.
    """
    path = os.path.abspath(path)
    parsed = parse_hidden_dir_name(os.path.basename(path))
    if parsed is None:
        return False
    _, _, pid, host = parsed
    if pid is not None and host == _host_tag():
        if pid == os.getpid():
            with _active_lock:
                return path not in _active
        alive = _pid_alive(pid)
        if alive is not None:
            return not alive
    try:
        return time.time() - _last_change(path) > UNKNOWN_OWNER_STALE_SECONDS
    except OSError:
        return False


def stale_hidden_dirs(parent):
    """The hidden swap directories in ``parent`` whose writer is gone, as ``{base: [(kind, path)]}``."""
    found = {}
    try:
        names = os.listdir(parent)
    except OSError:
        return found
    for name in names:
        parsed = parse_hidden_dir_name(name)
        if parsed is None:
            continue
        path = os.path.join(parent, name)
        if os.path.islink(path) or not os.path.isdir(path) or not writer_is_gone(path):
            continue
        found.setdefault(parsed[0], []).append((parsed[1], path))
    return found


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass
