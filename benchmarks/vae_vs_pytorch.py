"""The vae-mnist model trained by somanet and by PyTorch from the same start, on the same batches.

Both frameworks train the recipe's convolutional VAE (16-d latent, Bernoulli likelihood) with Adam
(lr 1e-3, batch 128) on MNIST images 0-6,999 of the official test file, starting from the same weights
(somanet's initialisation copied into PyTorch), seeing the same batches in the same order and the same
reparameterisation noise. Reported per epoch: wall time, the training objective, and the negative ELBO
(nats per image) on images 8,000-9,999 with fixed noise, which are only scored.

    python benchmarks/vae_vs_pytorch.py [--data ../shared/data] [--epochs 5] [--threads 2]
"""
import argparse
import os
import time

import somanet  # before NumPy: it sets OpenBLAS's thread timeout
import numpy as np
from somanet import optim
from somanet.data.datasets import MNIST
from somanet.models import conv_vae

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torch_twin(torch, s_vae):
    """A PyTorch module with the layout of ``conv_vae((1, 28, 28), 16, (32, 64), 256)`` and its weights."""
    tnn = torch.nn

    class Encoder(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(tnn.Conv2d(1, 32, 4, 2, 1), tnn.ReLU(), tnn.Conv2d(32, 64, 4, 2, 1),
                                           tnn.ReLU(), tnn.Flatten())
            self.fc = tnn.Sequential(tnn.Linear(64 * 7 * 7, 256), tnn.ReLU())
            self.head = tnn.Linear(256, 32)

        def forward(self, x):
            out = self.head(self.fc(self.features(x)))
            return out[:, :16], out[:, 16:]

    class Decoder(tnn.Module):
        def __init__(self):
            super().__init__()
            self.fc = tnn.Sequential(tnn.Linear(16, 256), tnn.ReLU(), tnn.Linear(256, 64 * 7 * 7), tnn.ReLU(),
                                     tnn.Unflatten(1, (64, 7, 7)))
            self.deconv = tnn.Sequential(tnn.ConvTranspose2d(64, 32, 4, 2, 1), tnn.ReLU(),
                                         tnn.ConvTranspose2d(32, 1, 4, 2, 1))

        def forward(self, z):
            return self.deconv(self.fc(z))

    class VAE(tnn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = Encoder(), Decoder()

        def nelbo(self, x, eps):
            mu, logvar = self.encoder(x)
            logits = self.decoder(mu + torch.exp(0.5 * logvar) * eps)
            recon = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
            kl = 0.5 * (mu * mu + logvar.exp() - 1 - logvar).sum(1)
            return recon + kl

    model = VAE()
    model.load_state_dict({k: torch.tensor(np.array(v.array)) for k, v in s_vae.state_dict().items()})
    return model


def somanet_nelbo(vae, x, eps):
    mu, logvar = vae.encode(x)
    logits = vae.decode(mu + (0.5 * logvar).exp() * eps)
    return vae.reconstruction_nll(logits, x) + 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar).sum(dim=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    somanet.set_num_threads(args.threads)

    ds = MNIST(root=os.path.join(args.data, "mnist"), train=False)
    pixels = (np.asarray(ds.data, dtype=np.float32) / np.float32(255.0))[:, None]
    train, test = pixels[:7000], pixels[8000:]
    rng = np.random.default_rng(args.seed)
    somanet.manual_seed(args.seed)
    s_vae = conv_vae((1, 28, 28), 16, channels=(32, 64), hidden=256)
    t_vae = torch_twin(torch, s_vae)
    s_opt = optim.Adam(s_vae.parameters(), lr=1e-3)
    t_opt = torch.optim.Adam(t_vae.parameters(), lr=1e-3)
    test_eps = rng.standard_normal((len(test), 16)).astype(np.float32)

    def score():
        with somanet.no_grad(), torch.no_grad():
            s = np.concatenate([somanet_nelbo(s_vae, somanet.tensor(test[i:i + 500]),
                                              somanet.tensor(test_eps[i:i + 500])).array
                                for i in range(0, len(test), 500)])
            t = np.concatenate([t_vae.nelbo(torch.tensor(test[i:i + 500]), torch.tensor(test_eps[i:i + 500])).numpy()
                                for i in range(0, len(test), 500)])
        return float(s.mean()), float(t.mean())

    print(f"{'epoch':>5} | {'somanet s':>9} {'train':>8} {'test':>8} | {'pytorch s':>9} {'train':>8} {'test':>8}")
    totals = [0.0, 0.0]
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train))
        batches = [order[i:i + 128] for i in range(0, len(order), 128)]
        eps = [rng.standard_normal((len(b), 16)).astype(np.float32) for b in batches]
        results = []
        for which in ("somanet", "pytorch"):
            start = time.perf_counter()
            total = 0.0
            for idx, e in zip(batches, eps):
                if which == "somanet":
                    s_opt.zero_grad()
                    loss = somanet_nelbo(s_vae, somanet.tensor(train[idx]), somanet.tensor(e)).mean()
                    loss.backward()
                    s_opt.step()
                else:
                    t_opt.zero_grad()
                    loss = t_vae.nelbo(torch.tensor(train[idx]), torch.tensor(e)).mean()
                    loss.backward()
                    t_opt.step()
                total += float(loss.item()) * len(idx)
            results.append((time.perf_counter() - start, total / len(train)))
        totals[0] += results[0][0]
        totals[1] += results[1][0]
        s_test, t_test = score()
        print(f"{epoch:5d} | {results[0][0]:9.1f} {results[0][1]:8.2f} {s_test:8.2f} | "
              f"{results[1][0]:9.1f} {results[1][1]:8.2f} {t_test:8.2f}", flush=True)
    print(f"total training time: somanet {totals[0]:.0f} s, PyTorch {totals[1]:.0f} s "
          f"({args.threads} threads each)")


if __name__ == "__main__":
    main()
