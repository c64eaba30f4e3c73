"""``somanet generate``: sample text from a trained language-model run.

    somanet generate runs/shakespeare-char-001 --prompt "ROMEO:"
    somanet generate runs/shakespeare-char-001 --prompt "ROMEO:" --max-new-tokens 300 --temperature 0.8 \\
        --top-k 20 --seed 1

The run's model and vocabulary come from its checkpoint (``best`` by default, else ``last``). Each new
character is drawn as ``GPT.generate`` draws it (Hugging Face's filters: ``--temperature``, then
``--top-k``, then ``--top-p``; ``--greedy`` or ``--temperature 0`` picks the most likely one), from a
generator seeded with ``--seed``, so the same seed gives the same text. The prompt and its
continuation are printed. A prompt with characters the model never saw is refused with exit status 2,
naming them.
"""
import sys

__all__ = ["add_parser", "cmd_generate"]


def add_parser(sub):
    """Register ``generate`` on the ``somanet`` command's subparsers."""
    from .main import _non_negative_int, _number, _positive_int
    p = sub.add_parser("generate", help="sample text from a trained language-model run (e.g. shakespeare-char)",
                       description="Continue a prompt with a trained language model (a run of shakespeare-char) "
                                   "and print the text.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by 'somanet train'")
    p.add_argument("--prompt", default="\n", metavar="TEXT",
                   help="the text to continue (default: a line break, as if starting a new speech)")
    p.add_argument("--max-new-tokens", type=_non_negative_int, default=500, metavar="N",
                   help="how many characters to add (default: 500)")
    p.add_argument("--temperature", type=_number(float, "a number >= 0", lambda v: 0 <= v < float("inf")),
                   default=1.0, metavar="T", help="below 1 sharper, above 1 more random; 0 is greedy (default: 1.0)")
    p.add_argument("--top-k", type=_positive_int, default=None, metavar="K",
                   help="sample only among the K most likely characters")
    p.add_argument("--top-p", type=_number(float, "a number in (0, 1]", lambda v: 0 < v <= 1), default=None,
                   metavar="P", help="nucleus sampling: only among the most likely characters whose probability "
                                     "reaches P")
    p.add_argument("--greedy", action="store_true", help="always take the most likely character (no sampling)")
    p.add_argument("--seed", type=_non_negative_int, default=None, metavar="S",
                   help="seed of the sampling; the same seed gives the same text (default: a fresh one)")
    p.add_argument("--checkpoint", default="best", metavar="best|last|DIR",
                   help="which checkpoint to load (default: best, else last)")
    p.add_argument("--data-dir", metavar="DIR", help="the data folder, if the run's moved since training")
    p.set_defaults(func=cmd_generate)
    return p


def cmd_generate(args):
    """Load the run's model, continue the prompt, print the text; returns the exit status."""
    from .main import CLIError, _model_from_run
    cfg, _, model, _ = _model_from_run(args)
    if not all(callable(getattr(model, name, None)) for name in ("generate", "encode", "decode", "unknown_symbols")):
        raise CLIError(f"{args.run_dir} is a run of recipe {cfg['recipe']!r}, whose model ({type(model).__name__}) "
                       f"does not generate text; 'somanet generate' takes language-model runs such as "
                       f"shakespeare-char")
    if not args.prompt:
        raise CLIError("--prompt is empty; give at least one character to continue")
    unknown = model.unknown_symbols(args.prompt)
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:20]) + (", ..." if len(unknown) > 20 else "")
        raise CLIError(f"the prompt has {len(unknown)} character(s) that are not in the model's vocabulary: "
                       f"{shown}. The model knows {len(model.vocab)} characters: {''.join(model.vocab)!r}")
    from ..random import Generator
    generator = Generator() if args.seed is None else Generator().manual_seed(args.seed)
    idx = model.encode(args.prompt)[None]
    out = model.generate(idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                         do_sample=not args.greedy, generator=generator)
    sys.stdout.write(model.decode(out.array[0]) + "\n")
    sys.stdout.flush()
    return 0
