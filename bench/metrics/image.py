"""Image metrics on (N, 3, H, W) float images in [0, 1] (data range 1).

Predictions are scored as the float values the pipeline returns, not quantised to 8 bits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.metrics.base import image_metric


@image_metric(higher_is_better=True)
def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB, data range 1: ``-10 log10(MSE)`` per image."""
    mse = (pred - target).pow(2).flatten(1).mean(1)
    return -10.0 * torch.log10(mse)


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


@image_metric(higher_is_better=True)
def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Structural similarity (Wang et al. 2004): Gaussian window 11, sigma 1.5, k1 0.01, k2 0.03.

    Statistics are population (not sample) moments over the window, and the map is
    averaged over the pixels whose window lies inside the image and over channels: the
    definition of ``skimage.metrics.structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1)``.
    """
    c = pred.shape[1]
    g = _gaussian_window(11, 1.5, pred.dtype, pred.device)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, 11, 11)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, kernel, groups=c)  # 'valid': only windows fully inside the image

    mu_x, mu_y = blur(pred), blur(target)
    var_x = blur(pred * pred) - mu_x**2
    var_y = blur(target * target) - mu_y**2
    cov = blur(pred * target) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1)


@image_metric(higher_is_better=False)
def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error per image (also called MAE)."""
    return (pred - target).abs().flatten(1).mean(1)
