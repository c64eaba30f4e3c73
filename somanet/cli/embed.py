"""``somanet embed``: sentence embeddings from a sentence-transformers (or BERT) model folder.

    somanet embed MODEL_DIR "A first sentence." "A second one."
    somanet embed MODEL_DIR --file sentences.txt --out embeddings.npy
    somanet embed MODEL_DIR "a cat" "a kitten" "a car" --similarity

``MODEL_DIR`` holds ``config.json``, ``model.safetensors`` (or ``pytorch_model.bin``) and
``tokenizer.json``, as a sentence-transformers folder such as all-MiniLM-L6-v2 does. The embeddings are
the ones sentence-transformers computes: the folder's pooling (mean by default), L2-normalised when the
folder says so. Needs the ``tokenizers`` and ``safetensors`` packages (``pip install 'somanet[text]'``).
"""
import json
import os
import sys

import numpy as np

__all__ = ["add_parser", "cmd_embed"]


class EmbedError(Exception):
    """Bad input to ``somanet embed``; printed as one line with exit status 2."""


def add_parser(sub):
    """Register ``embed`` on the ``somanet`` command's subparsers."""
    p = sub.add_parser("embed", help="sentence embeddings from a sentence-transformers / BERT model folder",
                       description="Embed sentences with a BERT encoder read from a Hugging Face folder (e.g. "
                                   "all-MiniLM-L6-v2): the folder's pooling, normalised as it says. Prints one line "
                                   "per sentence, or saves all with --out.")
    p.add_argument("model_dir", metavar="MODEL_DIR", help="folder with config.json, model.safetensors, tokenizer.json")
    p.add_argument("sentences", nargs="*", metavar="SENTENCE", help="the sentences to embed")
    p.add_argument("--file", metavar="FILE", help="also embed every non-empty line of FILE ('-' for stdin)")
    p.add_argument("--out", metavar="FILE", help="save the embeddings: .npy (array), .json or .csv")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="sentences per forward pass")
    p.add_argument("--pooling", choices=("mean", "cls", "max"), default=None,
                   help="override the folder's pooling")
    p.add_argument("--no-normalize", action="store_true", help="do not L2-normalise the embeddings")
    p.add_argument("--similarity", action="store_true", help="also print the cosine similarity of every pair")
    p.add_argument("--full", action="store_true", help="print every value, not the first few")
    p.set_defaults(func=cmd_embed)
    return p


def _sentences(args):
    sentences = list(args.sentences)
    if args.file:
        try:
            if args.file == "-":
                text = sys.stdin.read()
            else:
                with open(args.file, encoding="utf-8") as fh:
                    text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise EmbedError(f"cannot read --file {args.file}: {exc}") from None
        sentences += [line.strip() for line in text.splitlines() if line.strip()]
    if not sentences:
        raise EmbedError("no sentences: give them as arguments or with --file")
    return sentences


def _load(model_dir):
    from ..models import SentenceEncoder
    from ..models.pretrained import UnknownArchitectureError, WeightsMismatchError
    if not os.path.isdir(model_dir):
        raise EmbedError(f"{model_dir} is not a folder (expected a model folder with config.json and weights)")
    try:
        return SentenceEncoder.from_pretrained(model_dir)
    except ImportError as exc:
        raise EmbedError(str(exc)) from None
    except (FileNotFoundError, ValueError, UnknownArchitectureError, WeightsMismatchError) as exc:
        raise EmbedError(f"cannot load {model_dir}: {exc}") from None


def _check_out(path):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise EmbedError(f"--out {path}: the folder {folder} does not exist")
    if os.path.splitext(path)[1].lower() not in (".npy", ".json", ".csv"):
        raise EmbedError(f"--out {path}: use a .npy, .json or .csv file name")


def _save(path, sentences, emb):
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        np.save(path, emb)
    elif ext == ".json":
        with open(path, "w", encoding="utf-8") as fh:
            json.dump([{"sentence": s, "embedding": [float(v) for v in row]} for s, row in zip(sentences, emb)], fh)
    else:
        np.savetxt(path, emb, delimiter=",", fmt="%.8g")


def cmd_embed(args):
    try:
        if args.batch_size < 1:
            raise EmbedError(f"--batch-size must be a positive integer, got {args.batch_size}")
        sentences = _sentences(args)
        if args.out:
            _check_out(args.out)  # before the model is loaded, so a typo costs nothing
        encoder = _load(args.model_dir)
        if args.pooling:
            encoder.pooling = args.pooling
        if args.no_normalize:
            encoder.normalize = False
        emb = encoder.encode(sentences, batch_size=args.batch_size)
        if args.out:
            _save(args.out, sentences, emb)
    except EmbedError as exc:
        print(f"somanet: error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        print(f"Saved {emb.shape[0]} embeddings of {emb.shape[1]} dimensions to {args.out}")
    else:
        for sentence, row in zip(sentences, emb):
            values = row if args.full else row[:6]
            shown = ", ".join(f"{v:.4f}" for v in values) + ("" if args.full else ", ...")
            print(f"[{shown}] ({row.shape[0]} dims)  {sentence}")
    if args.similarity:
        unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        sims = unit @ unit.T
        print("Cosine similarity:")
        for i, sentence in enumerate(sentences):
            print("  " + " ".join(f"{v:6.3f}" for v in sims[i]) + f"  {sentence}")
    return 0
