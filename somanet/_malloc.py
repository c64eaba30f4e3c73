"""Memory allocator settings (glibc on Linux only), applied by ``somanet._process.configure_process``."""
import ctypes
import os
import sys

__all__ = ["keep_freed_memory"]


# glibc's malloc hands large blocks back to the kernel as soon as they are freed (mmap'ed blocks, and the
# top of the heap above a trim threshold), so the next array of that size faults in every page again,
# often at a higher cost than the arithmetic of the op that made it.
# Training steps allocate and free the same large activations every step, so keep freed memory for reuse.
_MMAP_THRESHOLD = 64 << 20
_TRIM_THRESHOLD = 256 << 20


def keep_freed_memory():
    """Ask glibc's malloc to reuse freed large blocks instead of returning them to the kernel (Linux).

    Called once, by ``configure_process``. It does nothing when ``SOMANET_MALLOC_TUNING=0``, when the user
    tuned malloc through ``MALLOC_*_`` or ``GLIBC_TUNABLES``, or off glibc. Peak memory is unchanged; memory freed
    after a peak is kept by the process (up to 256 MB at the top of the heap) rather than returned.
    Returns whether the settings were applied.
    """
    env = os.environ
    if env.get("SOMANET_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    if "glibc.malloc" in env.get("GLIBC_TUNABLES", "") or any(k.startswith("MALLOC_") and k.endswith("_")
                                                            for k in env):
        return False
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    # The option numbers below are glibc's; other C libraries number (or support) them differently.
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False
    mallopt = libc.mallopt
    m_trim_threshold, m_mmap_threshold = -1, -3
    # Fixed values also switch off glibc's own adaptive thresholds, which start at 128 kB.
    ok = mallopt(m_mmap_threshold, _MMAP_THRESHOLD) or mallopt(m_mmap_threshold, 32 << 20)
    return bool(ok) and bool(mallopt(m_trim_threshold, _TRIM_THRESHOLD))
