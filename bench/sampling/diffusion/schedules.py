"""Noise schedules: 3DiM's cosine log-SNR schedule (VP), EDM's Karras σ schedule (VE), and conversions."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def cosine_logsnr(t: Tensor, logsnr_min: float = -20.0, logsnr_max: float = 20.0) -> Tensor:
    """Log-SNR λ(t) of the cosine schedule at continuous times ``t`` in [0, 1] (t = 0: clean, 1: noise).

    λ(t) = −2 log tan(a t + b), with b = atan(exp(−λ_max / 2)) and a = atan(exp(−λ_min / 2)) − b, so
    λ(0) = λ_max and λ(1) = λ_min: the continuous form of Nichol & Dhariwal's (2021) cosine schedule
    (α² = cos²(π t / 2) away from the clipped ends) that 3DiM uses (Watson et al. 2022, "Novel View
    Synthesis with Diffusion Models", ../shared/seeds/002; λ clipped to [−20, 20] as in their code).
    """
    b = math.atan(math.exp(-0.5 * logsnr_max))
    a = math.atan(math.exp(-0.5 * logsnr_min)) - b
    return -2.0 * torch.log(torch.tan(a * t + b))


def alpha_sigma(logsnr: Tensor) -> tuple[Tensor, Tensor]:
    """(α, σ) of the VP process at log-SNR λ: α² = sigmoid(λ), σ² = sigmoid(−λ)."""
    return torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()


def logsnr_of_alphas_cumprod(alphas_cumprod: Tensor) -> Tensor:
    """λ = log(ᾱ / (1 − ᾱ)) of a discrete DDPM schedule's cumulative products ᾱ_t (Ho et al. 2020)."""
    return torch.log(alphas_cumprod) - torch.log1p(-alphas_cumprod)


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """(n + 1,) float64 noise levels of EDM (Karras et al. 2022, eq. 5), decreasing, with σ_n = 0 appended.

    σ_i = (σ_max^(1/ρ) + i / (n − 1) (σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ for i = 0 .. n − 1. The defaults are
    EDM's (σ_min 0.002, σ_max 80, ρ 7).
    """
    if n < 2:
        raise ValueError(f"karras_sigmas needs at least 2 steps, got {n}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    inv_max, inv_min = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sigmas = (inv_max + ramp * (inv_min - inv_max)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])
