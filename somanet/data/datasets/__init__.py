"""Datasets: bundled tabular sets (scikit-learn), MNIST / Fashion-MNIST / CIFAR-10 readers, text
corpora, and synthetic generators.

Files are read from a ``root`` folder, by default ``data_home()/<name>`` (``$SOMANET_DATA``, else
``~/.cache/somanet``); ``download=True`` fetches missing files from their canonical source and checks
their sha256.
"""
from ._download import data_home, DownloadError, ChecksumError, sha256_file
from .vision import read_idx, read_cifar_binary, MNIST, FashionMNIST, CIFAR10
from .tabular import Digits, Iris, Wine, BreastCancer, Diabetes, train_test_indices
from .text import (Vocab, CharCorpus, WordCorpus, train_val_split, LMWindows, batchify, BPTTIterator,
                   load_tinyshakespeare, TinyShakespeare, load_wikitext2, WikiText2)
from .synthetic import (make_spirals, Spirals, make_time_series, TimeSeriesWindows, make_shapes, Shapes,
                        detection_collate, SHAPE_CLASSES, make_reverse_pairs, make_sort_pairs, make_date_pairs,
                        Seq2SeqDataset)
from .synthetic import make_interactions, leave_one_out, ImplicitFeedback

__all__ = ["data_home", "DownloadError", "ChecksumError", "sha256_file", "read_idx", "read_cifar_binary", "MNIST",
           "FashionMNIST", "CIFAR10", "Digits", "Iris", "Wine", "BreastCancer", "Diabetes", "train_test_indices",
           "Vocab", "CharCorpus", "WordCorpus", "train_val_split", "LMWindows", "batchify", "BPTTIterator",
           "load_tinyshakespeare", "TinyShakespeare", "load_wikitext2", "WikiText2", "make_spirals", "Spirals",
           "make_time_series", "TimeSeriesWindows", "make_shapes", "Shapes", "detection_collate", "SHAPE_CLASSES",
           "make_reverse_pairs", "make_sort_pairs", "make_date_pairs", "Seq2SeqDataset",
           "make_interactions", "leave_one_out", "ImplicitFeedback"]
