"""DDPM training and sampling time: the ddpm-mnist U-Net in somanet and the same network in PyTorch.

Both frameworks get the same ``DiffusionUNet`` (somanet's initialisation copied into a PyTorch module
of the same layout, ``torch_unet``) and run the same work on the same inputs:

* a training step: the DDPM loss (MSE between the noise and the prediction at uniformly drawn
  timesteps, 10 % of the labels dropped for classifier-free guidance), backward, Adam, EMA update;
* sampling: one batch through the U-Net without gradient, which is one step of a sampler (DDPM's
  ancestral sampling takes 1,000 of them, DDIM 50; a guided step evaluates the conditional and the
  unconditional prediction, i.e. a double batch).

Reported: seconds per training step and per sampler step (median of the repeats), the ratio, and
the loss of both after the same steps (it should agree to float32 rounding).

    python benchmarks/diffusion_vs_pytorch.py [--threads 2] [--batch 64] [--steps 5] [--config mnist|digits]
"""
import argparse
import statistics
import time

import somanet  # before NumPy: it sets OpenBLAS's thread timeout
import numpy as np

from somanet import optim
from somanet.models.diffusion import DDPM, mnist_unet, digits_unet
from somanet.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def torch_unet(torch, s_unet):
    """A PyTorch module with the layout (and state-dict keys) of the somanet ``DiffusionUNet`` ``s_unet``,
    holding a copy of its weights."""
    tnn = torch.nn
    F = tnn.functional

    def groups(g, c):
        g = min(g, c)
        while c % g:
            g -= 1
        return g

    def embedding(t, dim, max_period=10000.0):
        half = dim // 2
        freqs = torch.exp(-np.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
        args = t.to(torch.float64)[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
        if dim % 2:
            emb = torch.cat([emb, torch.zeros(len(t), 1, dtype=torch.float64)], dim=1)
        return emb.float()

    class ResBlock(tnn.Module):
        def __init__(self, cin, cout, emb_dim, g, dropout):
            super().__init__()
            self.norm1 = tnn.GroupNorm(groups(g, cin), cin)
            self.conv1 = tnn.Conv2d(cin, cout, 3, padding=1)
            self.emb_proj = tnn.Linear(emb_dim, cout)
            self.norm2 = tnn.GroupNorm(groups(g, cout), cout)
            self.dropout = tnn.Dropout(dropout)
            self.conv2 = tnn.Conv2d(cout, cout, 3, padding=1)
            self.skip = tnn.Conv2d(cin, cout, 1) if cin != cout else tnn.Identity()

        def forward(self, x, emb):
            h = self.conv1(F.silu(self.norm1(x)))
            h = h + self.emb_proj(F.silu(emb))[:, :, None, None]
            h = self.conv2(self.dropout(F.silu(self.norm2(h))))
            return self.skip(x) + h

    class Attention(tnn.Module):
        def __init__(self, c, heads, g):
            super().__init__()
            self.heads = heads
            self.norm = tnn.GroupNorm(groups(g, c), c)
            self.qkv = tnn.Conv2d(c, 3 * c, 1)
            self.proj = tnn.Conv2d(c, c, 1)

        def forward(self, x):
            n, c, h, w = x.shape
            qkv = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w)
            q, k, v = qkv[:, 0].transpose(-1, -2), qkv[:, 1].transpose(-1, -2), qkv[:, 2].transpose(-1, -2)
            out = F.scaled_dot_product_attention(q, k, v)
            return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))

    class Level(tnn.Module):
        def __init__(self, res, attn):
            super().__init__()
            self.res, self.attn = res, attn

        def forward(self, x, emb):
            x = self.res(x, emb)
            return self.attn(x) if self.attn is not None else x

    class Down(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = tnn.Conv2d(c, c, 3, stride=2, padding=1)

        def forward(self, x, emb=None):
            return self.conv(x)

    class Up(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = tnn.Conv2d(c, c, 3, padding=1)

        def forward(self, x, size):
            return self.conv(F.interpolate(x, size=size, mode="nearest"))

    s = s_unet
    base, mults, nres, attn_levels = s.base_channels, s.channel_mults, s.num_res_blocks, s.attention_levels
    heads, g = s.mid_attn.num_heads, s.mid_attn.norm.num_groups
    dropout = s.mid1.dropout.p
    emb_dim = s.time_embed_dim

    class UNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.num_classes = s.num_classes
            self.time_mlp = tnn.Sequential(tnn.Linear(base, emb_dim), tnn.SiLU(), tnn.Linear(emb_dim, emb_dim))
            self.label_emb = tnn.Embedding(s.num_classes + 1, emb_dim) if s.num_classes else None
            self.conv_in = tnn.Conv2d(s.in_channels, base, 3, padding=1)

            def level(cin, cout, lvl):
                return Level(ResBlock(cin, cout, emb_dim, g, dropout),
                             Attention(cout, heads, g) if lvl in attn_levels else None)

            skips, ch = [base], base
            self.down = tnn.ModuleList()
            for lvl, m in enumerate(mults):
                for _ in range(nres):
                    self.down.append(level(ch, base * m, lvl))
                    ch = base * m
                    skips.append(ch)
                if lvl != len(mults) - 1:
                    self.down.append(Down(ch))
                    skips.append(ch)
            self.mid1 = ResBlock(ch, ch, emb_dim, g, dropout)
            self.mid_attn = Attention(ch, heads, g)
            self.mid2 = ResBlock(ch, ch, emb_dim, g, dropout)
            self.up = tnn.ModuleList()
            for lvl in reversed(range(len(mults))):
                for _ in range(nres + 1):
                    self.up.append(level(ch + skips.pop(), base * mults[lvl], lvl))
                    ch = base * mults[lvl]
                if lvl != 0:
                    self.up.append(Up(ch))
            self.norm_out = tnn.GroupNorm(groups(g, ch), ch)
            self.conv_out = tnn.Conv2d(ch, s.out_channels, 3, padding=1)

        def forward(self, x, t, labels=None):
            emb = self.time_mlp(embedding(t, base))
            if self.label_emb is not None:
                if labels is None:
                    labels = torch.full((x.shape[0],), self.num_classes, dtype=torch.long)
                emb = emb + self.label_emb(labels)
            h = self.conv_in(x)
            skips = [h]
            for block in self.down:
                h = block(h, emb)
                skips.append(h)
            h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
            for block in self.up:
                if isinstance(block, Up):
                    h = block(h, tuple(skips[-1].shape[2:]))
                else:
                    h = block(torch.cat([h, skips.pop()], 1), emb)
            return self.conv_out(F.silu(self.norm_out(h)))

    twin = UNet()
    state = {k: torch.tensor(np.array(v.array)) for k, v in s_unet.state_dict().items()}
    twin.load_state_dict(state)
    return twin


def _median_time(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5, help="timed training steps (after one warm-up step)")
    p.add_argument("--sample-repeats", type=int, default=5)
    p.add_argument("--config", choices=("mnist", "digits"), default="mnist")
    args = p.parse_args(argv)
    import torch
    somanet.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    somanet.manual_seed(0)
    size, unet = (28, mnist_unet()) if args.config == "mnist" else (8, digits_unet())
    t_unet = torch_unet(torch, unet)
    s_ddpm = DDPM(unet, num_classes=unet.num_classes, ema_decay=0.999)
    t_ema = torch.optim.swa_utils.AveragedModel(t_unet, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999))
    s_opt = optim.Adam(unet.parameters(), lr=2e-4)
    t_opt = torch.optim.Adam(t_unet.parameters(), lr=2e-4)
    sched = s_ddpm.schedule
    sqrt_ab = torch.tensor(sched.sqrt_alphas_cumprod, dtype=torch.float32)
    sqrt_1mab = torch.tensor(sched.sqrt_one_minus_alphas_cumprod, dtype=torch.float32)
    rng = np.random.default_rng(0)
    n = args.batch
    batches = []
    for _ in range(args.steps + 1):
        x0 = rng.uniform(-1, 1, (n, 1, size, size)).astype(np.float32)
        t = rng.integers(0, sched.num_timesteps, n)
        noise = rng.standard_normal((n, 1, size, size)).astype(np.float32)
        labels = rng.integers(0, 10, n)
        labels[rng.random(n) < 0.1] = 10
        batches.append((x0, t, noise, labels))

    def s_step(b):
        x0, t, noise, labels = b
        s_opt.zero_grad()
        loss = s_ddpm.loss(somanet.tensor(x0), somanet.tensor(labels), t=somanet.tensor(t),
                           noise=somanet.tensor(noise), drop_labels=False)
        loss.backward()
        s_opt.step()
        s_ddpm.ema.update_parameters(unet)
        return float(loss.item())

    def t_step(b):
        x0, t, noise, labels = (torch.tensor(a) for a in b)
        t_opt.zero_grad()
        xt = sqrt_ab[t][:, None, None, None] * x0 + sqrt_1mab[t][:, None, None, None] * noise
        loss = torch.nn.functional.mse_loss(t_unet(xt, t, labels), noise)
        loss.backward()
        t_opt.step()
        t_ema.update_parameters(t_unet)
        return float(loss.item())

    results = {}
    for name, step in (("somanet", s_step), ("pytorch", t_step)):
        step(batches[0])
        it = iter(batches[1:])
        sec, _ = _median_time(lambda: step(next(it)), args.steps)
        results[name] = {"train_step_s": sec}
    results["somanet"]["loss"] = s_step(batches[0])
    results["pytorch"]["loss"] = t_step(batches[0])

    xs = rng.standard_normal((2 * n, 1, size, size)).astype(np.float32)
    ts = np.full(2 * n, 500)
    ls = np.concatenate([rng.integers(0, 10, n), np.full(n, 10)])
    ema_s = s_ddpm.ema.module.eval()
    t_ema.module.eval()
    with somanet.no_grad():
        sx, st, sl = somanet.tensor(xs), somanet.tensor(ts), somanet.tensor(ls)
        results["somanet"]["sample_step_s"], s_out = _median_time(lambda: ema_s(sx, st, sl), args.sample_repeats)
    with torch.no_grad():
        tx, tt, tl = torch.tensor(xs), torch.tensor(ts), torch.tensor(ls)
        results["pytorch"]["sample_step_s"], t_out = _median_time(lambda: t_ema.module(tx, tt, tl),
                                                                   args.sample_repeats)
    diff = float(np.abs(s_out.array - t_out.numpy()).max())
    params = sum(p.numel() for p in unet.parameters())
    print(f"DiffusionUNet ({args.config}, {params:,} parameters), {args.threads} thread(s), batch {n}")
    print(f"{'':10s} {'train step (s)':>15s} {'sampler step, guided (s)':>25s} {'loss after':>11s}")
    for name in ("somanet", "pytorch"):
        r = results[name]
        print(f"{name:10s} {r['train_step_s']:15.3f} {r['sample_step_s']:25.3f} {r['loss']:11.5f}")
    s, t = results["somanet"], results["pytorch"]
    print(f"ratio      {s['train_step_s'] / t['train_step_s']:15.2f} {s['sample_step_s'] / t['sample_step_s']:25.2f}")
    print(f"EMA-model outputs differ by at most {diff:.2e} after {args.steps + 2} identical training steps")
    epoch_images = 7000 if args.config == "mnist" else 1438
    steps_per_epoch = -(-epoch_images // n)
    print(f"per epoch of {epoch_images:,} images: somanet {s['train_step_s'] * steps_per_epoch:.0f} s, "
          f"PyTorch {t['train_step_s'] * steps_per_epoch:.0f} s; {n} guided samples with DDIM-50: "
          f"somanet {50 * s['sample_step_s']:.0f} s, PyTorch {50 * t['sample_step_s']:.0f} s; "
          f"with 1,000 ancestral steps: somanet {1000 * s['sample_step_s']:.0f} s, "
          f"PyTorch {1000 * t['sample_step_s']:.0f} s")
    return results


if __name__ == "__main__":
    main()
