"""Functional forms of every op and layer, as ``somanet.nn.functional`` (PyTorch's ``F``).

Each family's functions live beside their ``Function`` classes in ``somanet.ops``; this module gathers
them under PyTorch's names.
"""
from ..ops.elementwise import (relu, relu6, leaky_relu, gelu, silu, elu, selu, softplus, hardtanh, sigmoid,  # noqa: F401
                               tanh)
from ..ops.reduce import *  # noqa: F401,F403
from ..ops.shape import *  # noqa: F401,F403
from ..ops.index import *  # noqa: F401,F403
from ..ops.linalg import *  # noqa: F401,F403
from ..ops.activation import *  # noqa: F401,F403
from ..ops.dropout import *  # noqa: F401,F403
from ..ops.norm import *  # noqa: F401,F403
from ..ops.embedding import *  # noqa: F401,F403
from ..ops.loss import *  # noqa: F401,F403
from ..ops.composite_loss import *  # noqa: F401,F403
from ..ops.matrix import cosine_similarity, pairwise_distance, cdist  # noqa: F401
from ..ops.conv import *  # noqa: F401,F403
from ..ops.pool import *  # noqa: F401,F403
from ..ops.sampling import *  # noqa: F401,F403
from ..ops.recurrent import *  # noqa: F401,F403
from ..ops.attention import *  # noqa: F401,F403
