"""Atomic file writes: every file the training system writes goes through here.

A reader (or a crash) never sees a half-written file: data goes to a temporary file in the same
directory, is flushed to disk, then renamed over the target with ``os.replace``, which is atomic on
POSIX and Windows as long as both paths are on the same file system (hence "same directory").
"""
import os
import shutil
import tempfile

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_replace_dir", "atomic_replace_file_from",
           "temporary_sibling"]


def temporary_sibling(path, suffix=""):
    """A new, empty temporary file next to ``path`` (same directory); returns its name."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp" + suffix, dir=directory)
    os.close(fd)
    return tmp


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
    is in place, so at every moment either the old or the new complete directory exists.
    """
    target = os.path.abspath(target)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(target) + ".tmp-", dir=parent)
    try:
        write_contents(tmp)
        old = None
        if os.path.lexists(target):
            old = tempfile.mkdtemp(prefix="." + os.path.basename(target) + ".old-", dir=parent)
            os.rmdir(old)
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass
