"""Optimizers and learning-rate schedulers (``somanet.optim``), with PyTorch's names and numerics.

>>> import somanet
>>> from somanet import optim
>>> w = somanet.tensor([1.0, -2.0], requires_grad=True)
>>> opt = optim.SGD([w], lr=0.1)
>>> w.grad = somanet.tensor([1.0, 1.0])
>>> opt.step()
>>> w
tensor([ 0.9, -2.1], requires_grad=True)
"""
from .optimizer import Optimizer, required
from .sgd import SGD
from .adam import Adam
from .adamw import AdamW
from .rmsprop import RMSprop
from .adagrad import Adagrad
from .adadelta import Adadelta
from .adamax import Adamax
from .nadam import NAdam
from .radam import RAdam
from .asgd import ASGD
from .lbfgs import LBFGS
from . import lr_scheduler
from . import swa_utils

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
           "ASGD", "LBFGS", "lr_scheduler", "swa_utils"]
