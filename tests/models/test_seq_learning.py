"""Sequence models of the zoo: CharRNN and GPT against equivalent PyTorch models, and short language-model
runs on tinyshakespeare that must beat the unigram baseline on the validation split."""
import contextlib
import os

import numpy as np
import pytest

import somanet
import somanet.nn.functional as F
from somanet.models import GPT, CharRNN
from somanet.optim import Adam
from reference import compare_modules, copy_state, torch_gpt, torch_or_skip

SEQ_LEN, BATCH = 64, 32


# --------------------------------------------------------------------------- PyTorch twins of the models
def _torch_char_rnn(torch, vocab, emb, hidden, layers, cell):
    class TorchCharRNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab, emb)
            self.rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](emb, hidden, layers)
            self.dropout = torch.nn.Dropout(0.0)
            self.head = torch.nn.Linear(hidden, vocab)

        def forward(self, idx):
            out, state = self.rnn(self.embedding(idx.T))
            return self.head(self.dropout(out)).transpose(0, 1), state

    return TorchCharRNN()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_char_rnn_matches_equivalent_torch_model(cell):
    torch = torch_or_skip()
    t = _torch_char_rnn(torch, 11, 6, 8, 2, cell)
    s = CharRNN(11, embedding_dim=6, hidden_size=8, num_layers=2, cell=cell)
    assert list(s.state_dict()) == list(t.state_dict())
    copy_state(t, s)
    idx = np.random.default_rng(0).integers(0, 11, (3, 7))
    compare_modules(s, t, idx, forward=lambda m, x: m(x))


def test_gpt_matches_equivalent_torch_model():
    torch = torch_or_skip()
    t = torch_gpt(torch, 13, 16, 2, 2, 8)
    s = GPT(13, block_size=16, n_layer=2, n_head=2, d_model=8)
    assert list(s.state_dict()) == list(t.state_dict())
    copy_state(t, s)
    idx = np.random.default_rng(1).integers(0, 13, (3, 10))
    compare_modules(s, t, idx, forward=lambda m, x: m(x))


def test_generation_and_errors():
    somanet.manual_seed(0)
    rnn = CharRNN(10, embedding_dim=4, hidden_size=6, num_layers=1, cell="gru")
    gpt = GPT(10, block_size=8, n_layer=1, n_head=2, d_model=8)
    prompt = somanet.tensor([[1, 2, 3], [4, 5, 6]])
    for model in (rnn, gpt):
        out = model.generate(prompt, 12, temperature=0.8, top_k=3)
        assert out.shape == (2, 15) and out.dtype == np.int64
        assert np.array_equal(out.array[:, :3], prompt.array)
        assert out.array.min() >= 0 and out.array.max() < 10
        greedy = model.generate(prompt, 4, temperature=0)
        assert np.array_equal(greedy.array, model.generate(prompt, 4, temperature=0).array)
    with pytest.raises(ValueError, match=r"GPT: sequence length 9 exceeds block_size=8"):
        gpt(somanet.zeros(1, 9, dtype=somanet.int64))
    with pytest.raises(ValueError, match="CharRNN: expected integer symbols of shape"):
        rnn(somanet.zeros(2, 3))
    assert gpt.head.weight is gpt.tok_emb.weight


# --------------------------------------------------------------------------- learning on tinyshakespeare
@contextlib.contextmanager
def _single_blas_thread():
    """Run the loop with one BLAS thread: these small GEMMs gain little from two, and a second thread
    stalls badly when other processes share the cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _shakespeare(data_dir):
    path = os.path.join(data_dir, "text", "tinyshakespeare.txt")
    if not os.path.exists(path):
        pytest.skip(f"{path} not found")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    vocab = sorted(set(text))
    lookup = np.zeros(max(map(ord, vocab)) + 1, np.int64)
    lookup[[ord(c) for c in vocab]] = np.arange(len(vocab))
    ids = lookup[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)]
    split = int(0.9 * len(ids))
    return ids[:split], ids[split:], len(vocab)


def _unigram_baseline(train, val, vocab):
    """Cross-entropy (nats) of the validation characters under the training characters' frequencies."""
    counts = np.bincount(train, minlength=vocab).astype(np.float64)
    return float(-np.mean(np.log(counts[val] / counts.sum())))


def _batch(ids, rng, batch=BATCH, seq=SEQ_LEN):
    starts = rng.integers(0, len(ids) - seq - 1, batch)
    x = np.stack([ids[s:s + seq] for s in starts])
    y = np.stack([ids[s + 1:s + seq + 1] for s in starts])
    return somanet.tensor(x), somanet.tensor(y)


def _train_and_validate(model, train, val, vocab, steps, lr):
    somanet.manual_seed(0)
    rng = np.random.default_rng(0)
    opt = Adam(model.parameters(), lr=lr)

    def logits_of(x):
        out = model(x)
        return out[0] if isinstance(out, tuple) else out

    first = None
    with _single_blas_thread():
        model.train()
        for _ in range(steps):
            x, y = _batch(train, rng)
            loss = F.cross_entropy(logits_of(x).reshape(-1, vocab), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            first = loss.item() if first is None else first
        model.eval()
        val_rng = np.random.default_rng(1)
        with somanet.no_grad():
            losses = []
            for _ in range(8):
                x, y = _batch(val, val_rng)
                losses.append(F.cross_entropy(logits_of(x).reshape(-1, vocab), y.reshape(-1)).item())
    return first, float(np.mean(losses))


def test_lstm_language_model_beats_unigram_baseline(data_dir):
    train, val, vocab = _shakespeare(data_dir)
    baseline = _unigram_baseline(train, val, vocab)
    assert vocab == 65 and 3.2 < baseline < 3.5
    somanet.manual_seed(0)
    model = CharRNN(vocab, embedding_dim=32, hidden_size=128, num_layers=1, cell="lstm")
    first, val_loss = _train_and_validate(model, train, val, vocab, steps=120, lr=1e-2)
    assert first > baseline, "an untrained model should start above the unigram baseline"
    assert val_loss < baseline, f"validation loss {val_loss:.3f} did not beat the unigram baseline {baseline:.3f}"


def test_causal_transformer_beats_unigram_baseline(data_dir):
    train, val, vocab = _shakespeare(data_dir)
    baseline = _unigram_baseline(train, val, vocab)
    somanet.manual_seed(0)
    model = GPT(vocab, block_size=SEQ_LEN, n_layer=2, n_head=4, d_model=64)
    first, val_loss = _train_and_validate(model, train, val, vocab, steps=150, lr=3e-3)
    assert first > baseline
    assert val_loss < baseline, f"validation loss {val_loss:.3f} did not beat the unigram baseline {baseline:.3f}"
