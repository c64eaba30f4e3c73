"""The import rewrite of porting.py on its own."""
import pytest

from compat.porting import map_module, rewrite_imports


@pytest.mark.parametrize("line,expected", [
    ("import torch", "import somanet as torch"),
    ("import torch as T", "import somanet as T"),
    ("import torch.nn as nn", "import somanet.nn as nn"),
    ("import torch.nn.functional as F", "import somanet.nn.functional as F"),
    ("import torch.utils.data", "import somanet.utils.data, somanet as torch"),
    ("import numpy as np, torch", "import numpy as np, somanet as torch"),
    ("from torch import nn, optim", "from somanet import nn, optim"),
    ("from torch.utils.data import DataLoader, Dataset", "from somanet.utils.data import DataLoader, Dataset"),
    ("from torch.nn.utils.rnn import (pack_padded_sequence,",
     "from somanet.nn.utils.rnn import (pack_padded_sequence,"),
    ("import torchvision", "import somanet.vision as torchvision"),
    ("import torchvision.transforms as T", "import somanet.vision.transforms as T"),
    ("import torchvision.transforms", "import somanet.vision.transforms, somanet.vision as torchvision"),
    ("from torchvision import datasets, transforms", "from somanet.vision import datasets, transforms"),
    ("from torchvision.utils import make_grid", "from somanet.vision.utils import make_grid"),
    ("    import torch  # lazily", "    import somanet as torch  # lazily"),
    ("import numpy as np", "import numpy as np"),
    ("from torchtext import data", "from torchtext import data"),
    ("import torchaudio", "import torchaudio"),
    ("x = torch.utils.data.DataLoader(ds)", "x = torch.utils.data.DataLoader(ds)"),
])
def test_rewrite_lines(line, expected):
    assert rewrite_imports(line) == expected


def test_rewrite_keeps_everything_else():
    source = 'import torch\n\n\ndef f():\n    """import torch is documented here"""\n    return torch.zeros(2)\n'
    out = rewrite_imports(source)
    assert out.splitlines()[0] == "import somanet as torch"
    assert out.splitlines()[1:] == source.splitlines()[1:]


def test_rewritten_program_runs_on_somanet():
    namespace = {}
    exec(rewrite_imports("import torch\nimport torch.nn.functional as F\nfrom torch.utils.data import DataLoader\n"
                         "y = F.relu(torch.tensor([-1.0, 2.0]))\n"), namespace)
    import somanet

    assert namespace["torch"] is somanet and namespace["y"].tolist() == [0.0, 2.0]
    assert namespace["DataLoader"] is somanet.utils.data.DataLoader


def test_map_module():
    assert map_module("torch.optim.lr_scheduler") == "somanet.optim.lr_scheduler"
    assert map_module("torchvision.models") == "somanet.vision.models"
    assert map_module("torchmetrics") is None
