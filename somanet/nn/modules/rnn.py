"""PyTorch's ``torch.nn.modules.rnn`` path: the recurrent layers (defined in ``recurrent.py``)."""
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
