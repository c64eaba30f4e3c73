"""The model zoo: classic architectures built from ``somanet.nn``, with PyTorch-compatible layouts."""
from .mlp import *  # noqa: F401,F403
from .lenet import *  # noqa: F401,F403
from .resnet import *  # noqa: F401,F403
from .char_rnn import *  # noqa: F401,F403
from .gpt import *  # noqa: F401,F403
from .vgg import *  # noqa: F401,F403
from .vit import *  # noqa: F401,F403
