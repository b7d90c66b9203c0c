"""Image metrics on (N, 3, H, W) float images in [0, 1] (data range 1).

Predictions are scored as the float values the pipeline returns, unless the suite sets
``metric_options.quantize`` (:data:`bench.metrics.evaluate.QUANTIZERS`). The SSIM family computes
its window statistics in float64, as scikit-image does (it casts its inputs to float64): in
float32, ``E[x²] − μ²`` on a flat grey background loses digits of the order of ``C2 = 9e-4``
and moved SSIM by up to 1e-4 (up to 8.8e-4 on real backgrounds).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.metrics.base import image_metric

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
UNIFORM_WINDOW = 7  # scikit-image's default SSIM window (7x7 uniform)
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli & Bovik 2003


@image_metric(higher_is_better=False)
def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per image."""
    return (pred - target).pow(2).flatten(1).mean(1)


@image_metric(higher_is_better=False)
def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error per image (registered as ``l1`` and ``mae``)."""
    return (pred - target).abs().flatten(1).mean(1)


@image_metric(higher_is_better=True)
def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB, data range 1: ``-10 log10(MSE)`` per image."""
    return -10.0 * torch.log10(mse.fn(pred, target))


@image_metric(higher_is_better=True, needs_mask=True)
def psnr_masked(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """PSNR against the target multiplied by its foreground mask, over the whole image.

    CO3D's ``psnr_masked`` (Reizenstein et al. 2021): the ground-truth background is
    replaced by black, so a method is scored on the object and on predicting an empty
    background. ``mask`` is (N, H, W) bool.
    """
    return psnr.fn(pred, target * mask[:, None].to(target.dtype))


@image_metric(higher_is_better=True, needs_mask=True)
def psnr_fg(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """PSNR over foreground pixels only (CO3D's ``psnr_fg``); NaN for an image with no foreground."""
    m = mask[:, None].to(pred.dtype).expand_as(pred)
    err = ((pred - target).pow(2) * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    return -10.0 * torch.log10(err)


@image_metric(higher_is_better=True, needs_mask=True, mask_kind="visible")
def psnr_visible(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """PSNR over the target pixels a source view sees (:mod:`bench.metrics.visibility`), the same set for every method.

    The pixels no source shows can only be guessed; an oracle built from the sources' true depth leaves
    them empty, so it is an upper bound on this metric, not on ``psnr``. ``mask`` is (N, H, W) bool.
    """
    return psnr_fg.fn(pred, target, mask)


def _gaussian_blur_valid(x: Tensor) -> Tensor:
    """Separable 11-tap Gaussian (sigma 1.5) filter of (N, C, H, W), 'valid' region only."""
    x_ = torch.arange(SSIM_WINDOW, dtype=x.dtype, device=x.device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(x_**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _box_filter_valid(x: Tensor) -> Tensor:
    """7x7 uniform (box) mean filter of (N, C, H, W), 'valid' region only: (N, C, H-6, W-6)."""
    return F.avg_pool2d(x, UNIFORM_WINDOW, stride=1)


def _ssim_terms(pred: Tensor, target: Tensor, blur: Callable[[Tensor], Tensor] = _gaussian_blur_valid,
                cov_norm: float = 1.0) -> tuple[Tensor, Tensor]:
    """Per-pixel luminance·structure map and contrast-structure map over the valid region of ``blur``.

    ``blur`` (N, C, H, W) -> (N, C, H', W') gives the local means (Gaussian 11: H' = H-10); all
    five local moments are filtered in one call (they are stacked as channels). Variances and
    the covariance are multiplied by ``cov_norm`` (n / (n - 1) for sample moments over n pixels).
    Computed in float64 whatever the input dtype (see the module docstring); the maps are float64.
    """
    pred, target = pred.double(), target.double()
    n, c = pred.shape[:2]
    moments = blur(torch.cat([pred, target, pred * pred, target * target, pred * target], 1))
    mu_x, mu_y, xx, yy, xy = moments.split(c, dim=1)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    if cov_norm != 1.0:
        var_x, var_y, cov = cov_norm * var_x, cov_norm * var_y, cov_norm * cov
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return luminance * cs, cs


def _check_window_fits(name: str, pred: Tensor, window: int) -> None:
    """ValueError when (N, C, H, W) images are smaller than the SSIM window on a side."""
    if min(pred.shape[-2:]) < window:
        raise ValueError(f"{name} needs images at least {window} px on each side, got {tuple(pred.shape[-2:])}")


@image_metric(higher_is_better=True, revision=2)  # 2: window statistics in float64
def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Structural similarity (Wang et al. 2004): Gaussian window 11, sigma 1.5, k1 0.01, k2 0.03.

    Statistics are population (not sample) moments over the window; the map is averaged
    over the pixels whose window lies inside the image and over channels. This is
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=...)``. Needs images at least 11 px
    on each side (the window must fit); smaller images raise ValueError.
    """
    _check_window_fits("ssim", pred, SSIM_WINDOW)
    s, _ = _ssim_terms(pred, target)
    return s.flatten(1).mean(1)


@image_metric(higher_is_better=True, revision=2)  # 2: window statistics in float64
def ssim_uniform7(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM as scikit-image computes it by default, the SSIM of pixelNeRF's and SSDNeRF's SRN evaluation.

    ``skimage.metrics.structural_similarity(data_range=1, channel_axis=...)`` with its defaults:
    Wang et al. 2004's formula with a 7x7 uniform window, sample moments (window variances and
    covariance times 49/48), k1 0.01, k2 0.03, the map averaged over the pixels whose window lies
    inside the image (scikit-image crops 3 px per side) and over channels. pixelNeRF
    (eval/calc_metrics.py) calls it with ``multichannel=True, data_range=1``; SSDNeRF's
    ``eval_ssim_skimage`` follows pixelNeRF. Not the same number as :func:`ssim` (Gaussian
    window, population moments): on a noisy 128 px pair 0.676 here against 0.634 there.
    Needs images at least 7 px on each side.
    """
    _check_window_fits("ssim_uniform7", pred, UNIFORM_WINDOW)
    n = UNIFORM_WINDOW**2
    s, _ = _ssim_terms(pred, target, _box_filter_valid, n / (n - 1))
    return s.flatten(1).mean(1)


@image_metric(higher_is_better=True, revision=2)  # 2: window statistics in float64
def ms_ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003), 5 scales with the paper's weights.

    Each scale is the SSIM window above; images are halved by 2x2 average pooling between
    scales; contrast-structure terms of scales 1-4 and the full SSIM of scale 5 are
    averaged over the valid pixels (as in the paper's reference code) and channels,
    clamped at 0 (as torchmetrics' default ``normalize="relu"``) and combined as a
    weighted geometric mean. Needs images larger than 160 px on each side (the window
    must fit at the coarsest scale); smaller images raise ValueError.
    """
    if min(pred.shape[-2:]) <= (SSIM_WINDOW - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1):
        raise ValueError(f"ms_ssim needs images larger than 160 px on each side, got {tuple(pred.shape[-2:])}")
    pred, target = pred.double(), target.double()  # the pooling between scales in float64 too
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=pred.dtype, device=pred.device)
    values = []
    for scale in range(len(MS_SSIM_WEIGHTS)):
        s, cs = _ssim_terms(pred, target)
        last = scale == len(MS_SSIM_WEIGHTS) - 1
        values.append((s if last else cs).flatten(1).mean(1).clamp(min=0))  # (N,)
        pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
    return (torch.stack(values) ** weights[:, None]).prod(0)
