"""Diffusion samplers, each named after its algorithm (conventions in :mod:`bench.sampling.diffusion`).

VP samplers take ``denoise(x_t, λ) -> x̂_0`` and a decreasing sequence of log-SNRs λ_0 > ... > λ_N
(noisiest last is *not* used: index 0 is where sampling starts, the noisiest level); EDM samplers take
``denoise(x, σ) -> x̂_0`` and decreasing noise levels σ_0 > ... > σ_N = 0. Every sampler returns the
final sample and the number of denoiser evaluations (NFE). Random draws come from ``generator`` in a
fixed order, so a seed gives the same samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from bench.sampling.diffusion.schedules import alpha_sigma

VPDenoiser = Callable[[Tensor, Tensor], Tensor]
EDMDenoiser = Callable[[Tensor, Tensor], Tensor]


def _noise(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _vp_levels(logsnrs: Tensor):
    """Each step t → s of a VP sampler: (last step?, λ_t, (α_t, σ_t), (α_s, σ_s))."""
    n = len(logsnrs) - 1
    for i in range(n):
        yield i == n - 1, logsnrs[i], alpha_sigma(logsnrs[i]), alpha_sigma(logsnrs[i + 1])


def ddpm_ancestral(denoise: VPDenoiser, x: Tensor, logsnrs: Tensor, generator: torch.Generator | None = None
                   ) -> tuple[Tensor, int]:
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), 3DiM's sampler, from x at λ_0 down the λs.

    Each step draws x_s ~ q(x_s | x_t, x_0 = x̂_0): the posterior mean
    ``α_s β / σ_t² · x̂_0 + α_{t|s} σ_s² / σ_t² · x_t`` with ``α_{t|s} = α_t / α_s``, ``β = 1 − α_{t|s}²``,
    and variance ``β σ_s² / σ_t²`` (the "fixed small" σ² = β̃ of Ho et al.); no noise on the last step.
    With the λs of a discrete schedule's timesteps this is diffusers' ``DDPMScheduler`` (tested).

    Args:
        logsnrs: (N + 1,) λ_0 (noisiest) ... λ_N (the level the sample ends at; +inf for clean data
            gives the last step's posterior mean x̂_0).
    """
    for last, lam_t, (alpha_t, sigma_t), (alpha_s, sigma_s) in _vp_levels(logsnrs):
        x0 = denoise(x, lam_t)
        alpha_ts = alpha_t / alpha_s
        beta = 1 - alpha_ts**2
        x = alpha_s * beta / sigma_t**2 * x0 + alpha_ts * sigma_s**2 / sigma_t**2 * x
        if not last:
            x = x + (beta * sigma_s**2 / sigma_t**2).clamp(min=1e-20).sqrt() * _noise(x, generator)
    return x, len(logsnrs) - 1


def ddim(denoise: VPDenoiser, x: Tensor, logsnrs: Tensor, eta: float = 0.0, generator: torch.Generator | None = None
         ) -> tuple[Tensor, int]:
    """DDIM (Song, Meng & Ermon 2021, eq. 12): x_s = α_s x̂_0 + sqrt(σ_s² − c²) ε̂ + c z.

    ``c = η sqrt(σ_s² / σ_t²) sqrt(1 − α_t² / α_s²)``; η = 0 is deterministic, η = 1 has DDPM's
    variance. ε̂ = (x_t − α_t x̂_0) / σ_t. Matches diffusers' ``DDIMScheduler`` (tested).
    """
    for last, lam_t, (alpha_t, sigma_t), (alpha_s, sigma_s) in _vp_levels(logsnrs):
        x0 = denoise(x, lam_t)
        eps = (x - alpha_t * x0) / sigma_t
        c = eta * (sigma_s**2 / sigma_t**2 * (1 - alpha_t**2 / alpha_s**2)).clamp(min=0).sqrt()
        x = alpha_s * x0 + (sigma_s**2 - c**2).clamp(min=0).sqrt() * eps
        if eta > 0 and not last:
            x = x + c * _noise(x, generator)
    return x, len(logsnrs) - 1


def _churn(x: Tensor, sigma: Tensor, n: int, s_churn: float, s_tmin: float, s_tmax: float, s_noise: float,
           generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """EDM Algorithm 2, lines 4-6: raise σ_i to σ̂ = (1 + γ) σ_i by adding noise, γ = min(S_churn / N, √2 − 1) on [S_tmin, S_tmax]."""
    gamma = min(s_churn / n, math.sqrt(2) - 1) if s_tmin <= float(sigma) <= s_tmax else 0.0
    if gamma == 0:
        return x, sigma
    sigma_hat = sigma * (1 + gamma)
    return x + (sigma_hat**2 - sigma**2).sqrt() * s_noise * _noise(x, generator), sigma_hat


def euler(denoise: EDMDenoiser, x: Tensor, sigmas: Tensor, s_churn: float = 0.0, s_tmin: float = 0.0,
          s_tmax: float = math.inf, s_noise: float = 1.0, generator: torch.Generator | None = None) -> tuple[Tensor, int]:
    """Euler's method on the probability-flow ODE dx/dσ = (x − D(x, σ)) / σ (Karras et al. 2022), with EDM's churn.

    EDM Algorithm 2 without its second-order correction: with ``s_churn`` 0 it is deterministic and is
    diffusers' ``EulerDiscreteScheduler`` (tested); with churn, noise raises σ_i to σ̂ before each step
    (the denoiser is evaluated at σ̂, as in EDM).
    """
    n = len(sigmas) - 1
    for i in range(n):
        x, sigma = _churn(x, sigmas[i], n, s_churn, s_tmin, s_tmax, s_noise, generator)
        d = (x - denoise(x, sigma)) / sigma
        x = x + (sigmas[i + 1] - sigma) * d
    return x, n


def heun(denoise: EDMDenoiser, x: Tensor, sigmas: Tensor, s_churn: float = 0.0, s_tmin: float = 0.0,
         s_tmax: float = math.inf, s_noise: float = 1.0, generator: torch.Generator | None = None) -> tuple[Tensor, int]:
    """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2): churn, an Euler step, Heun's correction.

    The correction averages the slopes at σ̂ and σ_{i+1} and is skipped on the last step (σ_N = 0), so N
    steps cost 2N − 1 denoiser evaluations. With ``s_churn`` 0 this is Algorithm 1 and diffusers'
    ``HeunDiscreteScheduler`` (tested).
    """
    n, nfe = len(sigmas) - 1, 0
    for i in range(n):
        x, sigma = _churn(x, sigmas[i], n, s_churn, s_tmin, s_tmax, s_noise, generator)
        d = (x - denoise(x, sigma)) / sigma
        nfe += 1
        x_next = x + (sigmas[i + 1] - sigma) * d
        if sigmas[i + 1] > 0:
            d_next = (x_next - denoise(x_next, sigmas[i + 1])) / sigmas[i + 1]
            nfe += 1
            x_next = x + (sigmas[i + 1] - sigma) * (d + d_next) / 2
        x = x_next
    return x, nfe
