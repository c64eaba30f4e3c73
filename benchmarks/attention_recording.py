"""What ``somanet.interpret.record_attention`` costs: the forward pass of GPT, GPT-2 and a ViT outside a
recording (after one: the hooks are removed) and inside one, with the outputs compared bit for bit.

    python benchmarks/attention_recording.py [--repeats 30]

The two variants run interleaved on the same inputs, one forward each in turn, so that a load change on
a shared machine hits all of them alike; each number is the median CPU time (``time.process_time``) of
one forward in eval mode under ``no_grad``, on one thread. Results are in docs/interpret.md.
"""
import argparse
import statistics
import time

import numpy as np

import somanet
from somanet.interpret import record_attention
from somanet.models import GPT, GPT2Config, GPT2LMHeadModel, VisionTransformer


def cases():
    """(name, model, inputs(seed) -> tensor, forward(model, x) -> tensor)."""
    somanet.manual_seed(0)
    gpt = GPT(65, block_size=128, n_layer=4, n_head=4, d_model=128).eval()
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=512, n_positions=128, n_embd=128, n_layer=4, n_head=4)).eval()
    vit = VisionTransformer(28, 4, in_channels=1, num_classes=10, d_model=64, num_layers=4, num_heads=4,
                            mlp_dim=128).eval()

    def ids(vocab):
        return lambda seed: somanet.tensor(np.random.default_rng(seed).integers(0, vocab, (8, 128)))

    def images(seed):
        return somanet.tensor(np.random.default_rng(seed).standard_normal((32, 1, 28, 28)).astype(np.float32))

    return [
        ("GPT (4 layers, d_model 128, 128 tokens, batch 8)", gpt, ids(65), lambda m, x: m(x)),
        ("GPT-2 (4 layers, n_embd 128, 128 tokens, batch 8)", gpt2, ids(512), lambda m, x: m(x).logits),
        ("ViT (4 layers, d_model 64, 50 tokens, batch 32)", vit, images, lambda m, x: m(x)),
    ]


def timed(forward, model, x, recording):
    t0 = time.process_time()
    if recording:
        with record_attention(model):
            out = forward(model, x)
    else:
        out = forward(model, x)
    return time.process_time() - t0, out.array


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    somanet.set_num_threads(1)
    print("| model | forward, not recording | while recording | outputs |")
    print("| --- | --- | --- | --- |")
    for name, model, inputs, forward in cases():
        times = {"plain": [], "recording": []}
        same = True
        with somanet.no_grad():
            timed(forward, model, inputs(0), False)  # warm-up
            for r in range(args.repeats):
                x = inputs(r)
                t, plain = timed(forward, model, x, False)
                times["plain"].append(t)
                t, recorded = timed(forward, model, x, True)
                times["recording"].append(t)
                same = same and np.array_equal(plain, recorded)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        print(f"| {name} | {med['plain']:.1f} ms | {med['recording']:.1f} ms "
              f"({med['recording'] / med['plain'] - 1:+.1%}) | {'bitwise identical' if same else 'DIFFERENT'} |")


if __name__ == "__main__":
    main()
