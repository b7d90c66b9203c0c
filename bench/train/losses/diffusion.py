"""Training losses of the diffusion methods (3DiM, GeNVS's denoiser), on tensors; the refiner stages
that train with them sample the noise levels here and pass the network's prediction.

- :func:`simple_diffusion_loss`: DDPM's "simple" loss (Ho et al. 2020, eq. 14), the mean squared error
  of the network's prediction against its target (ε, v or x_0; :func:`bench.sampling.diffusion.parameterization.target_of`),
  at times drawn uniformly (:func:`uniform_times`) through a schedule such as 3DiM's cosine log-SNR;
- :func:`edm_loss`: EDM's weighted denoising loss (Karras et al. 2022, eq. 8 and Table 1): σ drawn
  log-normally (:func:`edm_training_sigmas`), weight λ(σ) = (σ² + σ_d²) / (σ σ_d)² (:func:`edm_loss_weight`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bench.train.losses import loss


def uniform_times(n: int, generator: torch.Generator | None = None, device: torch.device | None = None) -> Tensor:
    """(n,) diffusion times t ~ U[0, 1) for continuous-time schedules (3DiM)."""
    return torch.rand(n, generator=generator, device=device)


def edm_training_sigmas(n: int, p_mean: float = -1.2, p_std: float = 1.2, generator: torch.Generator | None = None,
                        device: torch.device | None = None) -> Tensor:
    """(n,) σ with ln σ ~ N(P_mean, P_std²), EDM's training distribution (defaults P_mean −1.2, P_std 1.2)."""
    return (p_mean + p_std * torch.randn(n, generator=generator, device=device)).exp()


def edm_loss_weight(sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """EDM's loss weight λ(σ) = (σ² + σ_d²) / (σ σ_d)², which makes the preconditioned network's target unit-variance."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def simple_diffusion_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of a network's prediction against its target (ε, v or x_0), over every element."""
    return (prediction - target).pow(2).mean()


def edm_loss(denoised: Tensor, x0: Tensor, sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """EDM's loss: mean over samples of λ(σ) · mean over elements of (D(x_0 + σ n, σ) − x_0)², ``sigma`` (B,)."""
    per_sample = (denoised - x0).pow(2).flatten(1).mean(1)
    return (edm_loss_weight(sigma, sigma_data) * per_sample).mean()


@loss(requires=("denoise_pred", "denoise_target"), targets=())
def diffusion_mse(state: dict[str, Any], target: dict[str, Tensor]) -> Tensor:
    """:func:`simple_diffusion_loss` of a diffusion stage's ``denoise_pred`` against ``denoise_target`` (3DiM)."""
    return simple_diffusion_loss(state["denoise_pred"], state["denoise_target"])
