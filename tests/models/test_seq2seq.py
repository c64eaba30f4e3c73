"""Sequence-to-sequence models: the attention decoder step, the whole recurrent encoder-decoder and the
Transformer encoder-decoder against PyTorch twins with the same weights (outputs and every gradient);
beam search on a hand-checked table where greedy decoding is wrong, and against exhaustive search; a
short translate-dates run that must learn to translate held-out dates."""
import itertools
import json
import math
import os

import numpy as np
import pytest

import somanet
from somanet.models.seq2seq import AttentionDecoder, Seq2Seq, TransformerSeq2Seq, beam_search, greedy_search

from reference import compare_modules, copy_state, torch_or_skip


# --------------------------------------------------------------------------- PyTorch twins
def _torch_attention_decoder(torch, vocab, emb, hidden, memory, attention, cell):
    nn = torch.nn

    class Bahdanau(nn.Module):
        def __init__(self):
            super().__init__()
            self.query_proj = nn.Linear(hidden, hidden, bias=False)
            self.key_proj = nn.Linear(memory, hidden)
            self.score_proj = nn.Linear(hidden, 1, bias=False)

        def forward(self, q, keys, pad):
            s = self.score_proj(torch.tanh(self.query_proj(q).unsqueeze(1) + self.key_proj(keys))).squeeze(-1)
            w = torch.softmax(s.masked_fill(pad, float("-inf")), -1)
            return torch.bmm(w.unsqueeze(1), keys).squeeze(1), w

    class Luong(nn.Module):
        def __init__(self):
            super().__init__()
            if attention == "general":
                self.key_proj = nn.Linear(memory, hidden, bias=False)
            elif attention == "concat":
                self.concat_proj = nn.Linear(hidden + memory, hidden, bias=False)
                self.score_proj = nn.Linear(hidden, 1, bias=False)

        def forward(self, q, keys, pad):
            if attention == "concat":
                pairs = torch.cat([q.unsqueeze(1).expand(-1, keys.shape[1], -1), keys], -1)
                s = self.score_proj(torch.tanh(self.concat_proj(pairs))).squeeze(-1)
            else:
                k = self.key_proj(keys) if attention == "general" else keys
                s = torch.bmm(k, q.unsqueeze(2)).squeeze(2)
            w = torch.softmax(s.masked_fill(pad, float("-inf")), -1)
            return torch.bmm(w.unsqueeze(1), keys).squeeze(1), w

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, emb)
            cell_cls = nn.GRUCell if cell == "gru" else nn.LSTMCell
            if attention == "bahdanau":
                self.attention = Bahdanau()
                self.rnn = cell_cls(emb + memory, hidden)
                self.out = nn.Linear(hidden + memory + emb, vocab)
            else:
                self.attention = Luong()
                self.rnn = cell_cls(emb + hidden, hidden)
                self.concat = nn.Linear(memory + hidden, hidden)
                self.out = nn.Linear(hidden, vocab)

        def step(self, token, state, keys, mask):
            e = self.embedding(token)
            hx = state[0] if cell == "gru" else (state[0], state[1])
            if attention == "bahdanau":
                ctx, w = self.attention(state[0], keys, mask)
                new = self.rnn(torch.cat([e, ctx], 1), hx)
                h = new if cell == "gru" else new[0]
                return self.out(torch.cat([h, ctx, e], 1)), ((new,) if cell == "gru" else tuple(new)), w
            new = self.rnn(torch.cat([e, state[-1]], 1), hx)
            h = new if cell == "gru" else new[0]
            ctx, w = self.attention(h, keys, mask)
            ht = torch.tanh(self.concat(torch.cat([ctx, h], 1)))
            return self.out(ht), ((new,) if cell == "gru" else tuple(new)) + (ht,), w

    return Decoder()


def _torch_seq2seq(torch, src_vocab, tgt_vocab, emb, hidden, attention, cell):
    nn = torch.nn
    memory = 2 * hidden

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(src_vocab, emb, padding_idx=0)
            self.rnn = (nn.GRU if cell == "gru" else nn.LSTM)(emb, hidden, batch_first=True, bidirectional=True)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Encoder()
            self.decoder = _torch_attention_decoder(torch, tgt_vocab, emb, hidden, memory, attention, cell)
            self.decoder.embedding = nn.Embedding(tgt_vocab, emb, padding_idx=0)
            self.bridge = nn.Linear(memory, hidden)
            if cell == "lstm":
                self.bridge_c = nn.Linear(memory, hidden)

        def forward(self, src, tgt_in):
            lengths = (src != 0).sum(1)
            packed = nn.utils.rnn.pack_padded_sequence(self.encoder.embedding(src), lengths, batch_first=True,
                                                       enforce_sorted=False)
            out, state = self.encoder.rnn(packed)
            keys, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
            mask = src == 0
            if cell == "gru":
                h0 = torch.tanh(self.bridge(torch.cat([state[-2], state[-1]], 1)))
                dec = (h0,)
            else:
                h0 = torch.tanh(self.bridge(torch.cat([state[0][-2], state[0][-1]], 1)))
                c0 = torch.tanh(self.bridge_c(torch.cat([state[1][-2], state[1][-1]], 1)))
                dec = (h0, c0)
            if attention != "bahdanau":
                dec = dec + (torch.zeros_like(h0),)
            logits, weights = [], []
            for t in range(tgt_in.shape[1]):
                out, dec, w = self.decoder.step(tgt_in[:, t], dec, keys, mask)
                logits.append(out)
                weights.append(w)
            return torch.stack(logits, 1), torch.stack(weights, 1)

    return Model()


def _state_arrays(rng, batch, hidden, attention, cell):
    n = (1 if cell == "gru" else 2) + (0 if attention == "bahdanau" else 1)
    return [rng.standard_normal((batch, hidden)).astype(np.float32) for _ in range(n)]


# --------------------------------------------------------------------------- decoder step and whole models
@pytest.mark.parametrize("attention,cell", [("bahdanau", "gru"), ("general", "lstm"), ("dot", "gru"),
                                            ("concat", "lstm")])
def test_attention_decoder_step_matches_torch(attention, cell):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    vocab, emb, hidden, batch, src_len = 11, 6, 8, 3, 5
    memory_size = hidden if attention == "dot" else 10
    s_dec = AttentionDecoder(vocab, emb, hidden, memory_size, attention=attention, cell=cell)
    t_dec = _torch_attention_decoder(torch, vocab, emb, hidden, memory_size, attention, cell)
    copy_state(t_dec, s_dec)
    token = rng.integers(0, vocab, batch)
    memory = rng.standard_normal((batch, src_len, memory_size)).astype(np.float32)
    mask = np.zeros((batch, src_len), dtype=bool)
    mask[0, 3:] = True  # padding
    state = _state_arrays(rng, batch, hidden, attention, cell)

    def step(mod, tok, mem, pad, *st):  # the same call on both: logits, weights and the new state
        logits, new, w = mod.step(tok, tuple(st), mem, pad)
        return (logits, w) + tuple(new)

    out = compare_modules(_Stepper(s_dec, step), _Stepper(t_dec, step), token, memory, mask, *state,
                          requires_grad=[False, True, False] + [True] * len(state))
    weights = out[1].array
    assert np.allclose(weights.sum(-1), 1.0, atol=1e-6) and np.all(weights[0, 3:] == 0.0)


class _Stepper:
    """Calls ``forward(module, *inputs)`` and exposes the module's parameters (for compare_modules)."""

    def __init__(self, module, forward):
        self.module, self.forward = module, forward

    def __call__(self, *inputs):
        return self.forward(self.module, *inputs)

    def zero_grad(self):
        self.module.zero_grad()

    def named_parameters(self):
        return self.module.named_parameters()


@pytest.mark.parametrize("attention,cell", [("bahdanau", "gru"), ("general", "lstm")])
def test_seq2seq_matches_torch(attention, cell):
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    src_vocab, tgt_vocab, emb, hidden = 13, 9, 6, 8
    model = Seq2Seq(src_vocab, tgt_vocab, emb, hidden, cell=cell, bidirectional=True, attention=attention)
    twin = _torch_seq2seq(torch, src_vocab, tgt_vocab, emb, hidden, attention, cell)
    copy_state(twin, model)
    src = rng.integers(3, src_vocab, (4, 7))
    src[1, 4:] = 0
    src[3, 2:] = 0
    tgt = rng.integers(3, tgt_vocab, (4, 5))
    out = compare_modules(_Stepper(model, lambda m, s, t: m(s, t, return_attention=True)),
                          _Stepper(twin, lambda m, s, t: m(s, t)), src, tgt, grad_atol=2e-5)
    assert np.all(out[1].array[1, :, 4:] == 0.0)


def test_transformer_seq2seq_matches_torch():
    torch = torch_or_skip()
    nn = torch.nn
    rng = np.random.default_rng(2)
    sv, tv, d, max_len = 12, 10, 16, 20
    model = TransformerSeq2Seq(sv, tv, d_model=d, nhead=2, num_encoder_layers=2, num_decoder_layers=1,
                               dim_feedforward=24, dropout=0.0, max_len=max_len)
    pe = torch.tensor(model.pos.pe.array.copy())

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.src_embed = nn.Embedding(sv, d, padding_idx=0)
            self.tgt_embed = nn.Embedding(tv, d, padding_idx=0)
            self.transformer = nn.Transformer(d, 2, 2, 1, 24, 0.0, batch_first=True)
            self.generator = nn.Linear(d, tv)

        def forward(self, src, tgt):
            pad = src == 0
            s = self.src_embed(src) * math.sqrt(d) + pe[:src.shape[1]]
            t = self.tgt_embed(tgt) * math.sqrt(d) + pe[:tgt.shape[1]]
            mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
            mem = self.transformer.encoder(s, src_key_padding_mask=pad)
            out = self.transformer.decoder(t, mem, tgt_mask=mask, memory_key_padding_mask=pad, tgt_is_causal=True)
            return self.generator(out)

    twin = Twin()
    copy_state(twin, model)
    src = rng.integers(3, sv, (3, 6))
    src[0, 4:] = 0
    tgt = rng.integers(3, tv, (3, 5))
    compare_modules(_Stepper(model, lambda m, s, t: m(s, t)), _Stepper(twin, lambda m, s, t: m(s, t)), src, tgt,
                    rtol=2e-4, atol=2e-5)
    logits, attn = model(somanet.tensor(src), somanet.tensor(tgt), return_attention=True)
    assert attn.shape == (3, 5, 6)
    assert np.allclose(attn.array.sum(-1), 1.0, atol=1e-5) and np.all(attn.array[0, :, 4:] == 0.0)


# --------------------------------------------------------------------------- decoding
PAD, SOS, EOS, A, B = 0, 1, 2, 3, 4
# P(next | prefix) of a fake decoder: greedy takes A (0.5) then A (0.45) then <eos> (0.5): 0.1125; the
# best sequence is B <eos>: 0.4 * 0.9 = 0.36; the second best A B <eos>: 0.5 * 0.3 * 1.0 = 0.15.
_TABLE = {(): {A: 0.5, B: 0.4, EOS: 0.1},
          (A,): {A: 0.45, B: 0.3, EOS: 0.25},
          (B,): {EOS: 0.9, A: 0.05, B: 0.05},
          (A, A): {EOS: 0.5, A: 0.3, B: 0.2},
          (A, B): {EOS: 1.0}}


def _fake_step(tokens, state):
    prefixes = [tuple(int(t) for t in row if t != SOS) + ((int(tok),) if tok != SOS else ()) for row, tok in
                zip(state, tokens)]
    log_probs = np.full((len(tokens), 5), -np.inf)
    for i, p in enumerate(prefixes):
        for tok, prob in _TABLE.get(p, {A: 1 / 3, B: 1 / 3, EOS: 1 / 3}).items():
            log_probs[i, tok] = math.log(prob)
    new_state = np.concatenate([state, tokens[:, None]], axis=1)
    return log_probs, new_state, None


def test_beam_search_finds_the_best_sequence_where_greedy_fails():
    start = np.zeros((1, 0), dtype=np.int64)
    greedy = greedy_search(_fake_step, start, 1, SOS, EOS, max_len=6)
    assert greedy.sequences == [[A, A, EOS]]
    assert greedy.scores[0] == pytest.approx(math.log(0.5 * 0.45 * 0.5))
    start2 = np.zeros((2, 0), dtype=np.int64)
    res = beam_search(_fake_step, start2, 1, SOS, EOS, beam_size=2, max_len=6, length_penalty=0.0, return_all=True)
    assert res.sequences == [[B, EOS]]
    assert res.scores[0] == pytest.approx(math.log(0.36))
    # trace by hand: step 1 keeps A, B; step 2 finishes B<eos> and keeps AA, AB (A<eos> ranks 4th);
    # step 3 finishes AB<eos> (0.15) and AA<eos> (0.1125) and stops: no live beam can beat 0.15.
    assert [h.tokens for h in res.beams[0]] == [[B, EOS], [A, B, EOS], [A, A, EOS]]
    assert [h.log_prob for h in res.beams[0]] == pytest.approx([math.log(0.36), math.log(0.15), math.log(0.1125)])
    # with length normalisation (alpha = 1): log P / len; B<eos> still wins, with score log(0.36) / 2
    res = beam_search(_fake_step, start2, 1, SOS, EOS, beam_size=2, max_len=6, length_penalty=1.0)
    assert res.sequences == [[B, EOS]] and res.scores[0] == pytest.approx(math.log(0.36) / 2)
    # a beam of one is greedy decoding
    res = beam_search(_fake_step, start[:1], 1, SOS, EOS, beam_size=1, max_len=6, length_penalty=0.0)
    assert res.sequences == [[A, A, EOS]] and res.scores[0] == pytest.approx(math.log(0.1125))


def _sequence_log_prob(model, src, seq):
    tgt = np.array([[model.sos_idx] + seq[:-1]])
    with somanet.no_grad():
        logp = model(somanet.tensor(src), somanet.tensor(tgt)).log_softmax(-1).array[0]
    return float(sum(logp[t, tok] for t, tok in enumerate(seq)))


@pytest.mark.parametrize("kind", ["rnn", "transformer"])
def test_beam_search_is_exhaustive_with_a_wide_beam(kind):
    """Vocabulary 5, at most 3 tokens: a beam of 25 keeps every prefix, so it must find the most likely
    of all sequences, and the scores must be the model's own log-probabilities."""
    somanet.manual_seed(3)
    if kind == "rnn":
        model = Seq2Seq(7, 5, embed_dim=4, hidden_size=6, attention="general", max_decode_len=3)
    else:
        model = TransformerSeq2Seq(7, 5, d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                   dim_feedforward=8, dropout=0.0, max_len=8, max_decode_len=3)
    model.eval()
    src = np.array([[3, 4, 5, 6, 2]])
    best, best_lp = None, -np.inf
    for length in (1, 2, 3):
        for body in itertools.product([0, 1, 3, 4], repeat=length - 1):
            for last in ([2] if length < 3 else [0, 1, 2, 3, 4]):
                seq = list(body) + [last]
                lp = _sequence_log_prob(model, src, seq)
                if lp > best_lp:
                    best, best_lp = seq, lp
    res = model.beam_search(somanet.tensor(src), beam_size=25, max_len=3, length_penalty=0.0)
    assert res.sequences[0] == best
    assert res.scores[0] == pytest.approx(best_lp, abs=1e-4)
    greedy = model.greedy_decode(somanet.tensor(src), max_len=3)
    assert greedy.scores[0] == pytest.approx(_sequence_log_prob(model, src, greedy.sequences[0]), abs=1e-4)
    assert greedy.scores[0] <= res.scores[0] + 1e-6
    assert greedy.attention[0].shape == (len(greedy.sequences[0]), 5)


def test_batched_beam_search_equals_one_source_at_a_time():
    somanet.manual_seed(4)
    model = Seq2Seq(9, 7, embed_dim=4, hidden_size=6, attention="bahdanau", max_decode_len=6)
    src = np.array([[3, 4, 5, 2, 0], [6, 7, 8, 3, 2], [5, 2, 0, 0, 0]])
    both = model.beam_search(somanet.tensor(src), beam_size=3, length_penalty=0.6, return_all=True)
    for b in range(3):
        one = model.beam_search(somanet.tensor(src[b:b + 1, :(src[b] != 0).sum()]), beam_size=3, length_penalty=0.6)
        assert one.sequences[0] == both.sequences[b]
        assert one.scores[0] == pytest.approx(both.scores[b], abs=1e-5)
        assert both.beams[b][0].tokens == both.sequences[b]
        assert both.attention[b].shape == (len(both.sequences[b]), 5)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="attention must be one of"):
        Seq2Seq(5, 5, attention="luong")
    with pytest.raises(ValueError, match="query_size == key_size"):
        Seq2Seq(5, 5, embed_dim=4, hidden_size=4, bidirectional=True, attention="dot")
    model = Seq2Seq(5, 5, embed_dim=4, hidden_size=4)
    with pytest.raises(ValueError, match="int64 token ids of shape"):
        model(somanet.randn(2, 3), somanet.tensor(np.ones((2, 2), np.int64)))
    with pytest.raises(ValueError, match="beam_size must be an int"):
        model.beam_search(somanet.tensor(np.ones((1, 3), np.int64)), beam_size=0)
    with pytest.raises(ValueError, match=r"expected a \(src, tgt\) batch"):
        model.training_step(somanet.tensor(np.ones((1, 3), np.int64)), 0)


# --------------------------------------------------------------------------- learning
def test_translate_dates_learns_in_a_short_run(tmp_path, monkeypatch, one_thread):
    """A short run of the recipe (2,550 training pairs, 3 epochs of 40 steps) must translate at least 30 %
    of the held-out dates exactly (an untrained model: 0 %; this run measured 45 % greedy), and the report
    must be written."""
    from somanet.cli.main import main
    monkeypatch.chdir(tmp_path)
    code = main(["train", "translate-dates", "--epochs", "3", "--set", "data.n=3000", "--set",
                 "data.test_fraction=0.05", "--set", "model.report.beam_size=3", "--out", "run", "--no-plots"])
    assert code == 0
    with open(os.path.join("run", "translation.json")) as f:
        result = json.load(f)
    assert result["examples"] >= 120
    assert result["greedy_exact_match"] >= 0.3, result
    assert result["beam_exact_match"] >= 0.3, result
    assert 0.5 < result["greedy_bleu"] <= 1.0
    assert os.path.getsize(os.path.join("run", "attention.png")) > 5000
    with open(os.path.join("run", "summary.txt")) as f:
        assert "Translation quality" in f.read()
