"""somanet: a deep learning framework in Python on NumPy, with its own tensors and autograd.

>>> import somanet
>>> x = somanet.tensor([1.0, 2.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad
tensor([2., 4.])
"""
from .backend import (float16, float32, float64, int8, int16, int32, int64, uint8, bool_)
from .backend import bool_ as bool  # noqa: A001  - PyTorch spells it somanet.bool
from .backend import get_num_threads, set_num_threads
from .autograd import (Tensor, Function, no_grad, enable_grad, set_grad_enabled, inference_mode,
                       is_grad_enabled)
from . import autograd
from .random import Generator, manual_seed, seed, initial_seed, get_rng_state, set_rng_state
from . import ops
from .ops.creation import *  # noqa: F401,F403
from .ops.elementwise import *  # noqa: F401,F403
from .ops.reduce import *  # noqa: F401,F403
from .ops.shape import *  # noqa: F401,F403
from .ops.index import *  # noqa: F401,F403
from .ops.linalg import *  # noqa: F401,F403

half = float16
float = float32  # noqa: A001
double = float64
long = int64
int = int32  # noqa: A001

__version__ = "0.1.0"
