"""The malloc settings applied at import: on by default on glibc, off on request or when the user tuned
malloc, and effective (large arrays freed and allocated again do not fault their pages in anew)."""
import os
import subprocess
import sys

import pytest

glibc_linux = pytest.mark.skipif(not sys.platform.startswith("linux") or not os.path.exists("/proc/self/status"),
                                 reason="glibc malloc settings apply on Linux only")

PROBE = """
import resource
import numpy as np
import somanet.backend as b
a = np.ones((16, 64, 512), np.float32)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    np.tanh(a.copy())
before = faults()
for _ in range(20):
    np.tanh(a.copy())
print(b.malloc_tuned, faults() - before)
"""


def _probe(**env):
    full = {k: v for k, v in os.environ.items() if not (k.startswith("MALLOC_") or k == "GLIBC_TUNABLES"
                                                         or k == "SOMANET_MALLOC_TUNING")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=full, check=True)
    tuned, faults = out.stdout.split()
    return tuned == "True", int(faults)


@glibc_linux
def test_tuned_by_default_and_reuses_freed_blocks():
    tuned, faults = _probe()
    assert tuned
    # Forty 2 MB arrays made and freed: without reuse that is about 20,000 page faults.
    assert faults < 1000


@glibc_linux
@pytest.mark.parametrize("env", [{"SOMANET_MALLOC_TUNING": "0"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1000000"},
                                 {"MALLOC_TRIM_THRESHOLD_": "1000000"}])
def test_user_choice_wins(env):
    tuned, _ = _probe(**env)
    assert not tuned
