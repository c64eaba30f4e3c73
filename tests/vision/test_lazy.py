"""somanet.vision loads lazily, and Pillow only when an image is made; missing Pillow gives an install hint."""
import subprocess
import sys

import pytest

from somanet.data.transforms import _pil


def _run(code):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_somanet_loads_neither_vision_nor_pillow():
    out = _run("import sys, somanet; print('somanet.vision' in sys.modules, 'PIL' in sys.modules)")
    assert out == "False False"


def test_vision_modules_load_without_pillow_until_needed():
    out = _run("import sys, somanet; v = somanet.vision; from somanet.vision import datasets, transforms, models, "
               "utils; print(v.__name__, 'PIL' in sys.modules)")
    assert out == "somanet.vision False"


def test_missing_pillow_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install 'somanet\[vision\]'"):
        _pil.require_pillow("save_image")


def test_image_backend():
    import somanet.vision as vision

    assert vision.get_image_backend() == "PIL"
    vision.set_image_backend("PIL")
    with pytest.raises(ValueError, match="PIL"):
        vision.set_image_backend("accimage")
