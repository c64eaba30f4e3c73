"""Mixed precision on the CPU: agreement with ``torch.autocast("cpu")``, what it costs here, and what loss
scaling does for float16 training. The numbers in docs/amp.md come from this script.

    python benchmarks/amp_cpu.py                  # everything (a few minutes on two cores)
    python benchmarks/amp_cpu.py agree speed      # some parts: agree, speed, memory, fp16

* agree: a small CNN and an MLP with the same weights in both frameworks, run under autocast (bfloat16 and
  float16): the dtype of every layer's output, and how far the logits, the loss and the weight gradients are
  from PyTorch's, next to how far PyTorch's own autocast results are from float32.
* speed: one training step (forward under autocast, loss, backward, SGD) in float32, bf16-mixed and
  16-mixed, for somanet and PyTorch, best of several interleaved repeats.
* memory: the peak resident memory of those steps, each in a fresh process (``benchmarks/memory.py``).
* fp16: an MLP trained in pure float16, with autocast(float16), and with autocast(float16) + GradScaler.
"""
import sys
import time

import numpy as np

# --------------------------------------------------------------------------- models in either framework
MLP_SIZES = (784, 1024, 1024, 10)


def mlp(nn, sizes=MLP_SIZES):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def cnn(nn):
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10))


def _copy_weights(torch_model, soma_model):
    import somanet
    soma_model.load_state_dict({k: somanet.tensor(v.detach().numpy()) for k, v in torch_model.state_dict().items()})


# --------------------------------------------------------------------------- agree
def agree():
    import torch
    import somanet
    import somanet.nn as snn
    import somanet.nn.functional as F

    print("== agreement with torch.autocast('cpu'): same weights, same batch")
    rng = np.random.default_rng(0)
    cases = {"CNN 3x32x32, batch 16": (cnn, rng.standard_normal((16, 3, 32, 32)).astype(np.float32)),
             "MLP 784-1024-1024-10, batch 64": (mlp, rng.standard_normal((64, 784)).astype(np.float32))}
    for name, (build, x) in cases.items():
        target = rng.integers(0, 10, x.shape[0])
        torch.manual_seed(0)
        tm = build(torch.nn)
        sm = build(snn)
        _copy_weights(tm, sm)
        ref32 = tm(torch.tensor(x)).detach().numpy()
        for kind, sd, td in (("bf16", somanet.bfloat16, torch.bfloat16), ("fp16", somanet.float16, torch.float16)):
            sm.zero_grad()
            tm.zero_grad()
            s_types, t_types = [], []
            hooks = [m.register_forward_hook(lambda mod, i, o, acc=s_types: acc.append(str(o.dtype)))
                     for m in sm.children()]
            thooks = [m.register_forward_hook(lambda mod, i, o, acc=t_types: acc.append(str(o.dtype)[6:]))
                      for m in tm.children()]
            with somanet.autocast("cpu", dtype=sd):
                s_out = sm(somanet.tensor(x))
                s_loss = F.cross_entropy(s_out, somanet.tensor(target))
            with torch.autocast("cpu", dtype=td):
                t_out = tm(torch.tensor(x))
                t_loss = torch.nn.functional.cross_entropy(t_out, torch.tensor(target))
            for h in hooks + thooks:
                h.remove()
            s_loss.backward()
            t_loss.backward()
            so, to = s_out.float().detach().numpy(), t_out.float().detach().numpy()
            scale = np.abs(to).max()
            grads = [(p.grad.numpy(), q.grad.numpy()) for p, q in zip(sm.parameters(), tm.parameters())]
            # Relative to the largest gradient of the model: a bias followed by BatchNorm has a gradient that is
            # zero up to rounding, so a per-tensor ratio would compare rounding noise with rounding noise.
            gscale = max(np.abs(b).max() for _, b in grads)
            gerr = max(np.abs(a - b).max() for a, b in grads) / gscale
            print(f"{name}, {kind}:")
            print(f"  layer output dtypes equal PyTorch's: {s_types == t_types} ({', '.join(s_types)})")
            print(f"  logits: max |somanet - torch| = {np.abs(so - to).max() / scale:.2e} of the largest logit; "
                  f"torch autocast vs float32: {np.abs(to - ref32).max() / scale:.2e}")
            print(f"  loss: somanet {s_loss.item():.6f}, torch {t_loss.item():.6f} ({s_loss.dtype}, {t_loss.dtype})")
            print(f"  weight gradients (float32 in both): max difference {gerr:.2e} of the largest gradient")


# --------------------------------------------------------------------------- speed and memory
def soma_step(model_name, precision, threads=None):
    """A zero-argument training step of somanet (for timing, and for benchmarks/memory.py)."""
    import somanet
    import somanet.nn as snn
    import somanet.nn.functional as F
    from somanet.amp import GradScaler

    if threads:
        somanet.set_num_threads(threads)
    somanet.manual_seed(0)
    model = (mlp if model_name == "mlp" else cnn)(snn)
    rng = np.random.default_rng(0)
    shape = (256, 784) if model_name == "mlp" else (64, 3, 32, 32)
    x = somanet.tensor(rng.standard_normal(shape).astype(np.float32))
    y = somanet.tensor(rng.integers(0, 10, shape[0]))
    opt = somanet.optim.SGD(model.parameters(), lr=0.01)
    dtype = {"32": None, "bf16-mixed": somanet.bfloat16, "16-mixed": somanet.float16}[precision]
    scaler = GradScaler(enabled=precision == "16-mixed")

    def step():
        opt.zero_grad()
        with somanet.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


def torch_step(model_name, precision, threads=None):
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = (mlp if model_name == "mlp" else cnn)(torch.nn)
    rng = np.random.default_rng(0)
    shape = (256, 784) if model_name == "mlp" else (64, 3, 32, 32)
    x = torch.tensor(rng.standard_normal(shape).astype(np.float32))
    y = torch.tensor(rng.integers(0, 10, shape[0]))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    dtype = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}[precision]
    scaler = torch.amp.GradScaler("cpu", enabled=precision == "16-mixed")

    def step():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


PRECISIONS = ("32", "bf16-mixed", "16-mixed")


def speed(repeats=7, steps=3):
    import torch
    import somanet

    threads = somanet.get_num_threads()
    torch.set_num_threads(threads)
    print(f"== one training step, best of {repeats} interleaved repeats of {steps} steps, {threads} threads "
          f"(ms per step)")
    for model_name in ("mlp", "cnn"):
        fns = {}
        for p in PRECISIONS:
            fns[("somanet", p)] = soma_step(model_name, p)
            fns[("torch", p)] = torch_step(model_name, p)
        best = {k: float("inf") for k in fns}
        for fn in fns.values():
            fn()  # warm-up
        for _ in range(repeats):
            for key, fn in fns.items():
                t = time.perf_counter()
                for _ in range(steps):
                    fn()
                best[key] = min(best[key], (time.perf_counter() - t) / steps)
        what = "MLP 784-1024-1024-10, batch 256" if model_name == "mlp" else "CNN 3x32x32, batch 64"
        print(what)
        for lib in ("somanet", "torch"):
            base = best[(lib, "32")]
            cells = ", ".join(f"{p} {best[(lib, p)] * 1e3:.1f} ({best[(lib, p)] / base:.2f}x)" for p in PRECISIONS)
            print(f"  {lib:8s} {cells}")


def memory():
    sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
    from benchmarks.memory import fmt_bytes, peak_rss

    print("== peak resident memory of 3 training steps above the post-import baseline (fresh process each)")
    for model_name in ("mlp", "cnn"):
        cells = []
        for p in PRECISIONS:
            res = peak_rss("benchmarks.amp_cpu:soma_step", (model_name, p), imports=("somanet", "ml_dtypes"))
            ref = peak_rss("benchmarks.amp_cpu:torch_step", (model_name, p), imports=("torch",))
            cells.append(f"{p}: somanet {fmt_bytes(res['peak_bytes'])}, torch {fmt_bytes(ref['peak_bytes'])}")
        print(f"  {model_name}: " + "; ".join(cells))


# --------------------------------------------------------------------------- fp16 training
def _blobs(n=2048, d=32, k=10):
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((k, d)).astype(np.float32) * 1.5
    y = rng.integers(0, k, n)
    return (centers[y] + rng.standard_normal((n, d))).astype(np.float32), y


def train_fp16(mode, steps=150, loss_weight=1.0):
    """Adam on a 32-128-128-10 MLP: ``mode`` is "fp32", "fp16" (model and data in float16), "amp"
    (autocast(float16), float32 weights) or "amp+scaler" (the same with a GradScaler). ``loss_weight``
    scales the loss (a small one makes float16 gradients underflow). Returns (losses, weights finite,
    accuracy on the training set)."""
    import somanet
    import somanet.nn as snn
    from somanet.amp import GradScaler

    x_all, y_all = _blobs()
    somanet.manual_seed(0)
    model = mlp(snn, (32, 128, 128, 10))
    if mode == "fp16":
        model.half()
    opt = somanet.optim.Adam(model.parameters(), lr=1e-3)
    scaler = GradScaler(enabled=mode == "amp+scaler")
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(steps):
        idx = rng.integers(0, len(y_all), 64)
        x, y = somanet.tensor(x_all[idx]), somanet.tensor(y_all[idx])
        if mode == "fp16":
            x = x.half()
        opt.zero_grad()
        with somanet.autocast("cpu", dtype=somanet.float16, enabled=mode.startswith("amp")):
            loss = snn.functional.cross_entropy(model(x), y) * loss_weight
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.float().item() / loss_weight)
    finite = all(np.isfinite(p.array).all() for p in model.parameters())
    with somanet.no_grad():
        xe = somanet.tensor(x_all)
        acc = float((model(xe.half() if mode == "fp16" else xe).float().argmax(1).numpy() == y_all).mean())
    return losses, finite, acc


def fp16():
    print("== float16 training: Adam, lr 1e-3, 150 steps of 64 on 10 Gaussian blobs in 32-d")
    for weight in (1.0, 2.0 ** -20):
        print(f"loss weight {weight:g}" + (" (its gradients underflow float16 without scaling)" if weight < 1 else ""))
        for mode in ("fp32", "fp16", "amp", "amp+scaler"):
            t = time.perf_counter()
            losses, finite, acc = train_fp16(mode, loss_weight=weight)
            bad = next((i for i, v in enumerate(losses) if not np.isfinite(v)), None)
            end = np.mean(losses[-20:])
            print(f"  {mode:10s} loss {losses[0]:.3f} -> {end:.3f}, first non-finite loss at step {bad}, weights "
                  f"finite {finite}, accuracy {acc:.3f} ({time.perf_counter() - t:.1f} s)")


if __name__ == "__main__":
    parts = sys.argv[1:] or ["agree", "speed", "memory", "fp16"]
    for part in parts:
        {"agree": agree, "speed": speed, "memory": memory, "fp16": fp16}[part]()
