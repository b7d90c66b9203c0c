"""Semantic segmentation metrics on PASCAL VOC 2012 label maps (Everingham et al. 2010/2015).

``fn(pred (N,H,W) int64, target (N,H,W) int64) -> (N,K) float64`` per-image sufficient
statistics; ``reduce(stats (n,K))`` gives the dataset-level value of any set of images.
``miou`` averages over the classes present (in the ground truth or the predictions of the
images scored), as mmsegmentation's ``IoUMetric`` does (``np.nanmean`` of the class IoUs); its
``details`` state which classes that is (:func:`mean_over`).
Target pixels labelled 255 (object boundaries, "void") are ignored; a prediction outside
0..20 is simply wrong. Target labels other than 0..20 and 255 are an error.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from bench.metrics.base import metric

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
IGNORE_LABEL = 255
_K = len(VOC_CLASSES)


def _confusion(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image confusion counts (N, 21, 22) int64, indexed [image, target class, predicted class].

    Column 21 counts predictions outside 0..20; pixels whose target is 255 are left out.
    """
    counted = target != IGNORE_LABEL
    bad = counted & ((target < 0) | (target >= _K))
    if bad.any():
        raise ValueError(f"target labels outside 0..{_K - 1} and {IGNORE_LABEL}: {target[bad].unique().tolist()}")
    p = torch.where((pred >= 0) & (pred < _K), pred, _K)
    image = torch.arange(pred.shape[0], device=pred.device).view(-1, 1, 1)
    index = (image * _K + target) * (_K + 1) + p
    return torch.bincount(index[counted], minlength=pred.shape[0] * _K * (_K + 1)).view(-1, _K, _K + 1)


def _class_iou(stats: np.ndarray) -> np.ndarray:
    """IoU per class (21,) from summed ``miou`` rows; NaN for a class with empty union."""
    stats = np.asarray(stats, dtype=np.float64).reshape(-1, 2 * _K)
    intersection, union = stats[:, :_K].sum(0), stats[:, _K:].sum(0)
    return np.divide(intersection, union, out=np.full(_K, np.nan), where=union > 0)


def _mean_iou(stats: np.ndarray) -> float:
    """Mean of the class IoUs over classes with a non-empty union; NaN if there is none."""
    iou = _class_iou(stats)
    present = ~np.isnan(iou)
    return float(iou[present].mean()) if present.any() else float("nan")


def mean_over(iou: np.ndarray) -> str:
    """Which classes a mean of the class IoUs ``iou`` (21,) (NaN = absent) is over, in words, e.g.
    "the 19 of 21 classes present (in ground truth or prediction); left out: cow, sheep"."""
    absent = [name for name, v in zip(VOC_CLASSES, iou) if np.isnan(v)]
    if not absent:
        return f"all {_K} classes"
    if len(absent) == _K:
        return "no class: every pixel is ignored"
    return f"the {_K - len(absent)} of {_K} classes present (in ground truth or prediction); left out: {', '.join(absent)}"


def _per_class_iou(stats: np.ndarray) -> dict:
    """``{"per_class_iou": {class name: IoU, or None for a class absent from targets and predictions},
    "mean_over": which classes the mean is over}`` (:func:`mean_over`)."""
    iou = _class_iou(stats)
    return {"per_class_iou": {name: None if np.isnan(v) else float(v) for name, v in zip(VOC_CLASSES, iou)}, "mean_over": mean_over(iou)}


@metric("segmentation", higher_is_better=True, reduce=_mean_iou, details=_per_class_iou)
def miou(pred: Tensor, target: Tensor) -> Tensor:
    """Dataset-level mean intersection over union over the VOC classes present (the VOC 2012 protocol).

    Stats per image (N, 42): intersection_c then union_c, c = 0..20, pixel counts over
    non-ignored pixels. ``reduce`` sums them over the images, takes IoU_c = Σ intersection_c
    / Σ union_c (Everingham et al. 2015, "The PASCAL Visual Object Classes Challenge: A
    Retrospective"), so it is NOT the mean of per-image IoUs, and averages over the classes
    with Σ union_c > 0: a class neither in the ground truth nor predicted on the images scored
    is left out, as mmsegmentation's ``IoUMetric`` does (``np.nanmean``, 0 / 0 being NaN). On
    all of VOC 2012 val every class is present; on a subset (``--limit``) or a stand-in the
    mean may be over fewer, which ``details["mean_over"]`` states.
    """
    conf = _confusion(pred, target)
    intersection = conf.diagonal(dim1=1, dim2=2)
    union = conf.sum(2) + conf[:, :, :_K].sum(1) - intersection
    return torch.cat([intersection, union], dim=1).double()


def _pixel_accuracy(stats: np.ndarray) -> float:
    """Σ correct / Σ valid over the rows; NaN if no pixel is valid."""
    correct, valid = np.asarray(stats, dtype=np.float64).reshape(-1, 2).sum(0)
    return float(correct / valid) if valid > 0 else float("nan")


@metric("segmentation", higher_is_better=True, reduce=_pixel_accuracy)
def pixel_acc(pred: Tensor, target: Tensor) -> Tensor:
    """Dataset-level pixel accuracy: correctly labelled / non-ignored pixels, summed over images.

    Stats per image (N, 2): [correct, valid] pixel counts (Long et al. 2015, "Fully
    Convolutional Networks for Semantic Segmentation", pixel accuracy).
    """
    conf = _confusion(pred, target)
    return torch.stack([conf.diagonal(dim1=1, dim2=2).sum(1), conf.sum((1, 2))], dim=1).double()
