"""What a diffusion network predicts (ε, v or x_0) and EDM's preconditioning of a network.

Prediction targets of the VP process ``x_t = α x_0 + σ ε`` (:mod:`bench.sampling.diffusion`):
ε (Ho et al. 2020), x_0, and v = α ε − σ x_0 (Salimans & Ho 2022, "Progressive Distillation").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

Target = Literal["eps", "v", "x0"]


def _per_sample(level: Tensor, x: Tensor) -> Tensor:
    """A (B,) or scalar noise level shaped to broadcast against x (B, ...)."""
    level = torch.as_tensor(level, dtype=x.dtype, device=x.device)
    return level.reshape(-1, *([1] * (x.dim() - 1))) if level.dim() else level


def target_of(kind: Target, x0: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """The training target of a network predicting ``kind``, for clean data ``x0`` and noise ``eps``."""
    alpha, sigma = _per_sample(alpha, x0), _per_sample(sigma, x0)
    if kind == "eps":
        return eps
    if kind == "x0":
        return x0
    if kind == "v":
        return alpha * eps - sigma * x0
    raise ValueError(f"unknown prediction target {kind!r}; one of eps, v, x0")


def x0_from(kind: Target, prediction: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """x̂_0 from a network's ``prediction`` of ``kind`` at ``x_t = α x_0 + σ ε`` (α² + σ² = 1 for ``v``)."""
    alpha, sigma = _per_sample(alpha, x_t), _per_sample(sigma, x_t)
    if kind == "eps":
        return (x_t - sigma * prediction) / alpha
    if kind == "x0":
        return prediction
    if kind == "v":
        return alpha * x_t - sigma * prediction
    raise ValueError(f"unknown prediction target {kind!r}; one of eps, v, x0")


class EDMPreconditioned(nn.Module):
    """EDM's denoiser D(x, σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x, c_noise(σ)) around a network F.

    Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models", Table 1:
    c_skip = σ_d² / (σ² + σ_d²), c_out = σ σ_d / sqrt(σ² + σ_d²), c_in = 1 / sqrt(σ² + σ_d²),
    c_noise = ln(σ) / 4, with σ_d the data's standard deviation (0.5 for images in [−1, 1]). ``net`` is
    called as ``net(x_in, c_noise, **conditioning)`` with c_noise of shape (B,).
    """

    def __init__(self, net: Callable[..., Tensor], sigma_data: float = 0.5):
        super().__init__()
        self.net, self.sigma_data = net, sigma_data

    def forward(self, x: Tensor, sigma: Tensor, **conditioning: Tensor) -> Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0])
        s = _per_sample(sigma, x)
        sd2 = self.sigma_data**2
        c_skip = sd2 / (s**2 + sd2)
        c_out = s * self.sigma_data / (s**2 + sd2).sqrt()
        c_in = 1 / (s**2 + sd2).sqrt()
        return c_skip * x + c_out * self.net(c_in * x, sigma.log() / 4, **conditioning)
