"""Neural-network layers, losses, initialisation and functional ops (``somanet.nn``)."""
from .modules import *  # noqa: F401,F403
from .modules.module import Module, Parameter
from .modules.syncbatchnorm import SyncBatchNorm  # noqa: F401
from . import functional, init  # noqa: F401
from . import utils  # noqa: F401
