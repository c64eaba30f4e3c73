"""A small VAE: the reparameterisation trick with torch.randn_like, KL divergence, and sampling.

The noise comes from each framework's own generator, so the two runs take different paths; both must
learn (the loss falls below a stated value) and their deterministic pieces agree.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class VAE(nn.Module):
    def __init__(self, dim=8, hidden=32, latent=2):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x):
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h)
        std = torch.exp(0.5 * logvar)
        z = mu + std * torch.randn_like(std)
        return self.decoder(z), mu, logvar


def kl_divergence(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1).mean()


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 8)) * 3
    data = centres[rng.integers(0, 2, size=256)] + 0.3 * rng.normal(size=(256, 8))
    x = torch.from_numpy(data.astype(np.float32))

    model = VAE()
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            p.copy_(torch.from_numpy(rng.normal(0, 0.2, size=tuple(p.shape)).astype(np.float32)))
    fixed_mu = torch.from_numpy(rng.normal(size=(4, 2)).astype(np.float32))
    fixed_logvar = torch.from_numpy(rng.normal(size=(4, 2)).astype(np.float32))
    kl_fixed = kl_divergence(fixed_mu, fixed_logvar).item()

    with torch.no_grad():  # the decoder applied to the means involves no noise
        initial_mean_error = F.mse_loss(model.decoder(model.mu(model.encoder(x))), x).item()

    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    first = None
    for step in range(300):
        optimizer.zero_grad()
        reconstruction, mu, logvar = model(x)
        loss = F.mse_loss(reconstruction, x, reduction="sum") / x.size(0) + kl_divergence(mu, logvar)
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    final = loss.item()
    assert final < 0.35 * first, (first, final)
    model.eval()
    with torch.no_grad():
        samples = model.decoder(torch.randn(16, 2))
    return {"kl_fixed": kl_fixed, "initial_mean_error": initial_mean_error, "_first_loss": first,
            "_final_loss": final,
            "sample_shape": list(samples.shape), "noise_is_standard": float(torch.randn(20000).std().item() > 0.97)}


if __name__ == "__main__":
    print(main())
