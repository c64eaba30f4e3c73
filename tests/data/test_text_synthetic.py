"""Vocabularies, corpora and language-model batching; synthetic generators: structure, dtypes, seeds."""
import numpy as np
import pytest

import somanet
from somanet.data import DataLoader
from somanet.data.datasets import (BPTTIterator, CharCorpus, LMWindows, Seq2SeqDataset, Shapes, Spirals,
                                   TimeSeriesWindows, Vocab, WordCorpus, batchify, detection_collate,
                                   make_date_pairs, make_reverse_pairs, make_shapes, make_sort_pairs, make_spirals,
                                   make_time_series, train_val_split)


def test_vocab_build_min_freq_unk_and_round_trip(tmp_path):
    words = "the cat sat on the mat the end".split()
    v = Vocab.build(words, min_freq=2)
    assert v.itos == ["<unk>", "the"] and len(v) == 2
    assert v.encode(["the", "dog"]).tolist() == [1, 0] and v.encode(["the"]).dtype == np.int64
    full = Vocab.build(words, specials=("<unk>", "<eos>"))
    assert full.itos[:3] == ["<unk>", "<eos>", "the"]  # specials first, then by count
    assert full.decode(full.encode(words)) == words
    assert Vocab.build(words, max_size=4).itos == ["<unk>", "the", "cat", "end"]
    path = tmp_path / "vocab.json"
    full.save(path)
    assert Vocab.load(path) == full and [p.name for p in tmp_path.iterdir()] == ["vocab.json"]
    strict = Vocab(["a", "b"])
    with pytest.raises(KeyError, match="not in the vocabulary"):
        strict.encode("abc")
    with pytest.raises(ValueError, match="duplicate"):
        Vocab(["a", "a"])


def test_char_and_word_corpus():
    c = CharCorpus("hello world\nhello")
    assert c.decode(c.encode("low")) == "low" and c.ids.shape == (17,)
    train, val = c.split(0.25)
    assert len(train) == 12 and len(val) == 5
    w = WordCorpus("a b a\n\nc a\n", min_freq=1)
    assert w.tokens == ["a", "b", "a", "<eos>", "<eos>", "c", "a", "<eos>"]
    assert w.decode(w.encode("a c\n")) == "a c\n"
    rare = WordCorpus("a b a\n", min_freq=2)
    assert rare.vocab.decode(rare.ids) == ["a", "<unk>", "a", "<eos>"]
    assert train_val_split("abcdefghij", 0.2) == ("abcdefgh", "ij")


def test_lm_windows_and_loader_batches():
    ids = np.arange(50)
    ds = LMWindows(ids, seq_len=8)
    assert len(ds) == 6
    x, y = ds[1]
    assert x.tolist() == list(range(8, 16)) and y.tolist() == list(range(9, 17))
    xb, yb = next(iter(DataLoader(ds, batch_size=4, shuffle=True, generator=somanet.Generator(0))))
    assert xb.shape == (4, 8) and xb.dtype == np.int64
    np.testing.assert_array_equal(yb.array, xb.array + 1)
    dense = LMWindows(ids, seq_len=8, stride=1)
    assert len(dense) == 42 and dense[41][1].tolist()[-1] == 49
    with pytest.raises(IndexError):
        ds[6]


def test_batchify_and_bptt_streams_are_contiguous():
    ids = np.arange(103)
    data = batchify(ids, 4)
    assert data.shape == (4, 25) and data[1, 0] == 25
    it = BPTTIterator(ids, batch_size=4, bptt=7)
    batches = list(it)
    assert len(batches) == len(it) == 4 and [b[0].shape[1] for b in batches] == [7, 7, 7, 3]
    row = np.concatenate([b[0].array[2] for b in batches])
    np.testing.assert_array_equal(row, np.arange(50, 74))  # stream 2, without its last id (only a target)
    for x, y in batches:
        np.testing.assert_array_equal(y.array, x.array + 1)


def test_spirals_structure_and_seeds():
    X, y = make_spirals(200, noise=0.0, turns=1.5, seed=0)
    assert X.shape == (400, 2) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [200, 200]
    r = np.linalg.norm(X, axis=1)
    assert r.max() <= 1.0 + 1e-6
    # Without noise, class 1 is class 0 turned by half a turn: same radii distribution, mirrored points.
    theta = np.arctan2(X[:, 1], X[:, 0])
    expected = (2 * np.pi * 1.5 * r + np.pi * y - theta) % (2 * np.pi)
    assert np.allclose(np.minimum(expected, 2 * np.pi - expected), 0, atol=1e-4)
    np.testing.assert_array_equal(make_spirals(50, seed=3)[0], make_spirals(50, seed=3)[0])
    assert not np.array_equal(make_spirals(50, seed=3)[0], make_spirals(50, seed=4)[0])
    somanet.manual_seed(1)
    a = make_spirals(10)[0]
    somanet.manual_seed(1)
    np.testing.assert_array_equal(a, make_spirals(10)[0])
    ds = Spirals(n_per_class=30)
    x, label = ds[45]
    assert x.shape == (2,) and label == 1 and len(ds) == 60


def test_time_series_seasonality_and_windows():
    series = make_time_series(24 * 7 * 20, n_series=2, periods=(24, 168), noise=0.1, trend=0.0, seed=0)
    assert series.shape == (3360, 2) and series.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(series[:, 0] - series[:, 0].mean()))
    freqs = np.fft.rfftfreq(len(series))
    peaks = freqs[np.argsort(spectrum)[-2:]]
    assert set(np.round(1 / peaks).astype(int)) == {24, 168}
    assert not np.array_equal(series[:, 0], series[:, 1])
    win = TimeSeriesWindows(series, input_len=48, horizon=12, stride=24)
    x, y = win[3]
    assert x.shape == (48, 2) and y.shape == (12, 2)
    np.testing.assert_array_equal(y[0], series[3 * 24 + 48])
    xb, yb = next(iter(DataLoader(win, batch_size=5)))
    assert xb.shape == (5, 48, 2) and yb.dtype == np.float32


def test_shapes_boxes_and_masks_agree():
    images, semantic, targets = make_shapes(20, image_size=32, max_shapes=3, seed=0)
    assert images.shape == (20, 3, 32, 32) and images.dtype == np.float32 and semantic.dtype == np.int64
    assert 0.0 <= images.min() and images.max() <= 1.0
    for sem, t in zip(semantic, targets):
        assert 1 <= len(t["labels"]) <= 3 and t["masks"].shape[1:] == (32, 32)
        union = np.zeros((32, 32), bool)
        for box, label, mask in zip(t["boxes"], t["labels"], t["masks"]):
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            assert box.tolist() == [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]
            assert (sem[mask.astype(bool)] == label).all()
            union |= mask.astype(bool)
        np.testing.assert_array_equal(union, sem > 0)
    seg = Shapes(n=6, task="segmentation")
    xb, mb = next(iter(DataLoader(seg, batch_size=3)))
    assert xb.shape == (3, 3, 32, 32) and mb.shape == (3, 32, 32) and mb.dtype == np.int64
    imgs, tgts = next(iter(DataLoader(Shapes(n=4, task="detection"), batch_size=2, collate_fn=detection_collate)))
    assert imgs.shape == (2, 3, 32, 32) and isinstance(tgts[0]["boxes"], somanet.Tensor)


def test_seq2seq_tasks():
    rev = make_reverse_pairs(20, seed=0)
    assert all(t == s[::-1] for s, t in rev)
    srt = make_sort_pairs(20, seed=0)
    assert all(t == "".join(sorted(s)) for s, t in srt)
    dates = make_date_pairs(200, seed=0)
    import datetime
    for text, iso in dates:
        d = datetime.date.fromisoformat(iso)
        assert str(d.year) in text and 1950 <= d.year <= 2049
    assert len({t for t, _ in dates[:50]}) == 50 and make_date_pairs(5, seed=1) == make_date_pairs(5, seed=1)
    ds = Seq2SeqDataset(rev)
    src, tgt = ds[0]
    assert tgt[0] == ds.tgt_vocab["<sos>"] and tgt[-1] == src[-1] == ds.tgt_vocab["<eos>"]
    assert ds.decode(tgt) == rev[0][1] and ds.decode(src, target=False) == rev[0][0]
    s, t = next(iter(DataLoader(ds, batch_size=4, collate_fn=ds.collate)))
    assert s.dtype == np.int64 and t.shape[0] == 4 and (s.array == ds.pad_index).any()
