"""Reverse-mode automatic differentiation: Tensor, Function, the backward engine and grad modes."""
from .tensor import Tensor
from .function import Function
from .engine import backward, grad
from .grad_mode import no_grad, enable_grad, set_grad_enabled, inference_mode, is_grad_enabled
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from . import functional
from .anomaly import detect_anomaly, set_detect_anomaly, is_anomaly_enabled, is_anomaly_check_nan_enabled

__all__ = ["Tensor", "Function", "backward", "grad", "no_grad", "enable_grad", "set_grad_enabled",
           "inference_mode", "is_grad_enabled", "gradcheck", "gradgradcheck", "GradcheckError", "functional",
           "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled", "is_anomaly_check_nan_enabled"]
