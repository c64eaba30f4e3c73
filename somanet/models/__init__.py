"""The model zoo: classic architectures built from ``somanet.nn``, with PyTorch-compatible layouts."""
from .mlp import *  # noqa: F401,F403
from .lenet import *  # noqa: F401,F403
from .resnet import *  # noqa: F401,F403
from .char_rnn import *  # noqa: F401,F403
from .gpt import *  # noqa: F401,F403
from .vgg import *  # noqa: F401,F403
from .alexnet import *  # noqa: F401,F403
from .vit import *  # noqa: F401,F403
from .vae import *  # noqa: F401,F403
from .gan import *  # noqa: F401,F403
from .bert import *  # noqa: F401,F403
from .gpt2 import *  # noqa: F401,F403
from .t5 import *  # noqa: F401,F403
from .pretrained import (PretrainedConfig, from_pretrained, save_pretrained, load_weights,  # noqa: F401
                         convert_state_dict, read_state_dict, register_architecture, architectures, Architecture,
                         UnknownArchitectureError, WeightsMismatchError)
from .tokenizer import Tokenizer, ByteTokenizer, BatchEncoding  # noqa: F401
from .small_cnn import SmallCNN, mnist_cnn, digits_to_mnist  # noqa: F401
from .unet import DiffusionUNet  # noqa: F401
from .diffusion import (DDPM, NoiseSchedule, linear_beta_schedule, cosine_beta_schedule, ddpm_sample,  # noqa: F401
                        ddim_sample)
from .seq2seq import (Seq2Seq, TransformerSeq2Seq, RNNEncoder, AttentionDecoder, beam_search,  # noqa: F401
                      greedy_search, DecodeResult, Hypothesis)
from .forecast import LSTMForecaster, TransformerForecaster, seasonal_naive  # noqa: F401
