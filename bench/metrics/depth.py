"""Depth metrics: ``fn(pred (N,H,W), target (N,H,W), options: DepthOptions) -> (N,)`` float64.

Each value is computed per image over the pixels valid in both maps: valid ground truth
(``min_depth < target``, and ``target <= max_depth`` when set) and a valid prediction (finite
and > 0; 0 is the harness's "no depth here", e.g. a hole a splatting renderer left). Holes are
not scored as a depth of ``min_depth``: that made a true-depth oracle with 15-67 % holes look
5x worse than a learned model (issue 12). What a prediction leaves out is :data:`depth_coverage`,
the fraction of valid ground-truth pixels it predicts, reported beside the other depth metrics
wherever they appear (:func:`bench.metrics.evaluate.with_depth_coverage`). With
``options.median_scaling`` the prediction is first multiplied, per image, by
median(target) / median(pred) over those pixels; then it is clamped to
[min_depth, max_depth] (the upper bound only when set). This is the order of the
KITTI evaluation of Zhou et al. 2017 ("Unsupervised Learning of Depth and Ego-Motion
from Video") and Godard et al. 2019 (Monodepth2); on a prediction without holes the
values are theirs. An image without a pixel valid in both gets NaN.

The error definitions are those of Eigen et al. 2014 ("Depth Map Prediction from a Single
Image using a Multi-Scale Deep Network"), in the form used by the KITTI depth benchmark
(Uhrig et al. 2017), plus the log10 error of the Make3D / NYU evaluations. Everything is
computed in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bench.metrics.base import DepthOptions, metric


def _masked_median(x: Tensor, mask: Tensor) -> Tensor:
    """Median of each image of ``x`` (N,H,W) over ``mask`` (N,H,W) -> (N,), NaN where the mask is empty.

    For an even count it is the mean of the two middle values (``np.median``).
    """
    values = torch.where(mask, x, torch.inf).flatten(1).sort(dim=1).values
    count = mask.flatten(1).sum(1)
    middle = torch.stack([(count - 1) // 2, count // 2], dim=1).clamp(min=0)
    median = values.gather(1, middle).mean(1)
    return torch.where(count > 0, median, torch.nan)


def valid_target(target: Tensor, options: DepthOptions) -> Tensor:
    """(N,H,W) bool: ground-truth pixels with ``min_depth < target`` (and ``<= max_depth`` when set)."""
    valid = target > options.min_depth
    if options.max_depth is not None:
        valid &= target <= options.max_depth
    return valid


def _predicted(pred: Tensor) -> Tensor:
    """(N,H,W) bool: pixels where the prediction gives a depth (finite and > 0)."""
    return torch.isfinite(pred) & (pred > 0)


def _valid_pixels(pred: Tensor, target: Tensor, options: DepthOptions) -> tuple[Tensor, Tensor, Tensor]:
    """Scaled and clamped prediction, target, and the mask of pixels valid in both, each (N,H,W) (float64, float64, bool).

    Invalid pixels hold 1 in both depth maps, so every per-pixel term below is finite
    there; :func:`_masked_mean` leaves them out.
    """
    pred, target = pred.double(), target.double()
    valid = valid_target(target, options) & _predicted(pred)
    if options.median_scaling:
        pred = pred * (_masked_median(target, valid) / _masked_median(pred, valid))[:, None, None]
    pred = pred.clamp(min=options.min_depth, max=options.max_depth)
    return torch.where(valid, pred, 1.0), torch.where(valid, target, 1.0), valid


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of each image of ``x`` (N,H,W) over ``mask`` -> (N,); an empty mask gives 0/0 = NaN."""
    return torch.where(mask, x, 0.0).flatten(1).sum(1) / mask.flatten(1).sum(1)


@metric("depth", higher_is_better=False, revision=2)  # 2: pixels valid in both maps
def abs_rel(pred: Tensor, target: Tensor, options: DepthOptions) -> Tensor:
    """Absolute relative error ``mean(|pred − gt| / gt)`` per image (Eigen et al. 2014)."""
    p, g, valid = _valid_pixels(pred, target, options)
    return _masked_mean((p - g).abs() / g, valid)


@metric("depth", higher_is_better=False, revision=2)  # 2: pixels valid in both maps
def sq_rel(pred: Tensor, target: Tensor, options: DepthOptions) -> Tensor:
    """Squared relative error ``mean((pred − gt)² / gt)`` per image (Eigen et al. 2014)."""
    p, g, valid = _valid_pixels(pred, target, options)
    return _masked_mean((p - g) ** 2 / g, valid)


@metric("depth", higher_is_better=False, revision=2)  # 2: pixels valid in both maps
def rmse(pred: Tensor, target: Tensor, options: DepthOptions) -> Tensor:
    """Root mean squared error ``sqrt(mean((pred − gt)²))`` per image, in depth units (Eigen et al. 2014)."""
    p, g, valid = _valid_pixels(pred, target, options)
    return _masked_mean((p - g) ** 2, valid).sqrt()


@metric("depth", higher_is_better=False, revision=2)  # 2: pixels valid in both maps
def rmse_log(pred: Tensor, target: Tensor, options: DepthOptions) -> Tensor:
    """Root mean squared log error ``sqrt(mean((ln pred − ln gt)²))`` per image (Eigen et al. 2014)."""
    p, g, valid = _valid_pixels(pred, target, options)
    return _masked_mean((p.log() - g.log()) ** 2, valid).sqrt()


@metric("depth", higher_is_better=False, revision=2)  # 2: pixels valid in both maps
def silog(pred: Tensor, target: Tensor, options: DepthOptions) -> Tensor:
    """Scale-invariant log error ×100: ``100 sqrt(mean(d²) − mean(d)²)``, ``d = ln pred − ln gt``, per image.

    The scale-invariant error of Eigen et al. 2014 (λ = 1), as a square root and ×100 as
    reported by the KITTI depth benchmark (Uhrig et al. 2017). Rounding below zero is clamped.
    """
    p, g, valid = _valid_pixels(pred, target, options)
    d = p.log() - g.log()
    variance = _masked_mean(d**2, valid) - _masked_mean(d, valid) ** 2
    return 100.0 * variance.clamp(min=0.0).sqrt()


@metric("depth", higher_is_better=False, revision=2)  # 2: pixels valid in both maps
def log10(pred: Tensor, target: Tensor, options: DepthOptions) -> Tensor:
    """Mean absolute log10 error ``mean(|log10 pred − log10 gt|)`` per image.

    Saxena et al. 2009 ("Make3D"); the usual NYU Depth v2 protocol (e.g. Laina et al. 2016,
    "Deeper Depth Prediction with Fully Convolutional Residual Networks").
    """
    p, g, valid = _valid_pixels(pred, target, options)
    return _masked_mean((p.log10() - g.log10()).abs(), valid)


def _delta(pred: Tensor, target: Tensor, options: DepthOptions, power: int) -> Tensor:
    """Fraction of valid pixels with ``max(pred / gt, gt / pred) < 1.25**power`` -> (N,)."""
    p, g, valid = _valid_pixels(pred, target, options)
    return _masked_mean((torch.maximum(p / g, g / p) < 1.25**power).double(), valid)


@metric("depth", higher_is_better=True, revision=2)  # 2: pixels valid in both maps
def delta1(pred: Tensor, target: Tensor, options: DepthOptions) -> Tensor:
    """Threshold accuracy δ < 1.25: fraction of valid pixels with ``max(pred/gt, gt/pred) < 1.25`` (Eigen et al. 2014)."""
    return _delta(pred, target, options, 1)


@metric("depth", higher_is_better=True, revision=2)  # 2: pixels valid in both maps
def delta2(pred: Tensor, target: Tensor, options: DepthOptions) -> Tensor:
    """Threshold accuracy δ < 1.25²: fraction of valid pixels with ``max(pred/gt, gt/pred) < 1.25²`` (Eigen et al. 2014)."""
    return _delta(pred, target, options, 2)


@metric("depth", higher_is_better=True, revision=2)  # 2: pixels valid in both maps
def delta3(pred: Tensor, target: Tensor, options: DepthOptions) -> Tensor:
    """Threshold accuracy δ < 1.25³: fraction of valid pixels with ``max(pred/gt, gt/pred) < 1.25³`` (Eigen et al. 2014)."""
    return _delta(pred, target, options, 3)


@metric("depth", higher_is_better=True)
def depth_coverage(pred: Tensor, target: Tensor, options: DepthOptions) -> Tensor:
    """Fraction of the valid ground-truth pixels where the prediction gives a depth (finite, > 0), per image.

    The other depth metrics are taken on those pixels only, so they say how good the depth is
    where there is one, and this says where there is one: 1 for a full map.
    """
    valid = valid_target(target.double(), options)
    return _masked_mean(_predicted(pred.double()).double(), valid)
