"""Finding, downloading and checking dataset files.

Downloads go to a temporary file in the destination folder, are checked against a pinned sha256,
and only then renamed into place (``os.replace``), so an interrupted or corrupted download never
leaves a file that looks finished. ``_fetch(url, dest)`` is the only function that touches the
network.

Where files live: a dataset's ``root`` argument, or by default ``data_home() / <name>``, where
``data_home()`` is ``$SOMANET_DATA`` if set, else ``$XDG_CACHE_HOME/somanet``, else
``~/.cache/somanet``.
"""
import hashlib
import os
import shutil
import tempfile
import urllib.request

__all__ = ["data_home", "DownloadError", "ChecksumError", "sha256_file", "download_file", "atomic_write_bytes",
           "atomic_write_text"]

_TIMEOUT_SECONDS = 60


class DownloadError(RuntimeError):
    """A dataset file could not be downloaded (offline, server error, wrong checksum)."""


class ChecksumError(DownloadError):
    """A downloaded file's sha256 is not the pinned one."""


def data_home():
    """The folder where datasets are cached: ``$SOMANET_DATA``, ``$XDG_CACHE_HOME/somanet`` or ``~/.cache/somanet``."""
    env = os.environ.get("SOMANET_DATA")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "somanet")


def dataset_root(root, name):
    """``root`` as an absolute path, or the default cache folder for dataset ``name``."""
    if root is None:
        return os.path.join(data_home(), name)
    return os.path.abspath(os.path.expanduser(os.fspath(root)))


def sha256_file(path, chunk_size=1 << 20):
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url, dest):
    """Write the bytes at ``url`` to the file ``dest`` (the only network access in somanet.data)."""
    request = urllib.request.Request(url, headers={"User-Agent": "somanet"})
    with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def _temp_path(folder, name):
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    os.close(fd)
    return tmp


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def download_file(urls, dest, sha256, what):
    """Download ``dest`` from the first of ``urls`` that works and whose content has ``sha256``.

    Args:
        urls: mirror URLs to try in order (a string for one).
        dest: the final path of the file.
        sha256: the expected hex digest.
        what: the dataset's name, for messages.

    Raises:
        ChecksumError: every download that arrived had the wrong checksum.
        DownloadError: no mirror could be reached. Nothing is left at ``dest`` in either case.
    """
    if isinstance(urls, str):
        urls = [urls]
    folder, name = os.path.split(os.path.abspath(dest))
    os.makedirs(folder, exist_ok=True)
    failures, bad_checksum = [], False
    for url in urls:
        tmp = _temp_path(folder, name)
        try:
            _fetch(url, tmp)
            got = sha256_file(tmp)
            if got != sha256:
                bad_checksum = True
                failures.append(f"{url}: sha256 {got} does not match the expected {sha256}")
                continue
            os.replace(tmp, dest)
            return dest
        except Exception as exc:  # network errors come in many types (URLError, timeouts, HTTP errors)
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
        finally:
            _remove(tmp)
    error = ChecksumError if bad_checksum else DownloadError
    raise error(f"{what}: could not download {name}:\n  " + "\n  ".join(failures) +
                f"\nIf this machine is offline, download the file elsewhere and put it at {dest} "
                f"(expected sha256 {sha256}).")


def missing_file_error(what, names, folder, download_hint=True):
    """A FileNotFoundError that says which files are missing and where to put them."""
    names = [names] if isinstance(names, str) else list(names)
    hint = " or pass download=True to fetch them" if download_hint else ""
    return FileNotFoundError(f"{what}: {', '.join(names)} not found in {folder}. Put the file(s) there{hint} "
                             f"(the default folder can be moved with the SOMANET_DATA environment variable).")


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = _temp_path(folder, name)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def atomic_write_text(path, text, encoding="utf-8"):
    """Write ``text`` to ``path`` atomically (see ``atomic_write_bytes``)."""
    atomic_write_bytes(path, text.encode(encoding))
