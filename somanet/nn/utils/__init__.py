"""nn utilities."""
from .clip_grad import (clip_grad_norm_, clip_grad_norm, clip_grad_value_, get_total_norm,  # noqa: F401
                        clip_grads_with_norm_)
from .convert_parameters import parameters_to_vector, vector_to_parameters  # noqa: F401
from .regularization import regularized_parameters, l1_penalty, l2_penalty  # noqa: F401
from . import rnn  # noqa: F401
from .fusion import fuse_conv_bn_eval, fuse_conv_bn_weights, fuse_linear_bn_eval, fuse_linear_bn_weights  # noqa: F401
from .fusion import fuse_for_inference  # noqa: F401
from . import fusion  # noqa: F401
from .spectral_norm import spectral_norm, remove_spectral_norm  # noqa: F401
from . import parametrizations  # noqa: F401
from .memory import skip_init, convert_conv2d_weight_memory_format, convert_conv3d_weight_memory_format  # noqa: F401
