"""The metric contract, one shape per family.

A :class:`Metric` wraps a function named after what it computes; its ``family`` fixes the
arguments the harness passes (N = number of compared pairs, flattened over samples,
targets and draws):

================  ==========================================================  ===========
family            ``fn`` arguments                                            returns
================  ==========================================================  ===========
``image``         pred (N,3,H,W), target (N,3,H,W) in [0,1]                   (N,)
``image`` masked  pred, target, mask (N,H,W) bool  (``needs_mask=True``)      (N,)
``depth``         pred (N,H,W), target (N,H,W) z-depth (0 = invalid),         (N,)
                  options: :class:`DepthOptions`
``pose``          pred (N,4,4), target (N,4,4) cam2world (or relative)        (N,)
``segmentation``  pred (N,H,W) int64, target (N,H,W) int64 (255 = ignore)     (N,K) stats
``distribution``  pred (N,3,H,W), target (N,3,H,W)                            (N,K) stats
``consistency``   images (T,3,H,W), K (T,3,3), cam2world (T,4,4),             ()
                  depth (T,H,W) or None  -- one generated set of a scene
================  ==========================================================  ===========

Most metrics are means of per-pair values. A metric with ``reduce`` is a dataset-level
quantity (mIoU from summed intersections and unions, FID from feature statistics): its
``fn`` returns per-pair sufficient statistics, ``reduce(stats (n, K)) -> float`` computes
the value from the rows of any set of samples (the bootstrap resamples samples), and
``details(stats) -> dict`` may add a breakdown (e.g. per-class IoU) to the summary.

``unavailable()`` returns why a metric cannot run on this machine (the weight file it
looked for), or None. Such a metric is reported, never silently dropped.

``revision`` is raised when a fix changes a metric's values for the same inputs (SSIM's float64
statistics, depth on the pixels valid in both maps, a zero translation scored 90°): it enters the
run key (:meth:`bench.suite.Suite.scoring_digest`), so scores stored under the old definition are
never reported as the new one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FAMILIES = ("image", "depth", "pose", "segmentation", "distribution", "consistency", "cost")


@dataclass(frozen=True)
class DepthOptions:
    """How depth is compared (suite key ``metric_options: {depth: {...}}``).

    ``median_scaling`` scales each prediction by median(target) / median(pred) over valid
    pixels first (for self-supervised depth, known only up to scale). Valid pixels have
    ``min_depth < target`` (and ``target <= max_depth`` when set); predictions are clamped
    to [min_depth, max_depth] as in the usual KITTI/NYU evaluation code.
    """

    median_scaling: bool = False
    min_depth: float = 1e-3
    max_depth: float | None = None


#: Suffix of the image metrics of the mean draw (``psnr_of_mean_draw``, :func:`bench.metrics.evaluate.with_mean_draw`).
MEAN_DRAW_SUFFIX = "_of_mean_draw"


@dataclass(frozen=True)
class Metric:
    """A named score: see the module docstring for ``fn`` by ``family``."""

    fn: Callable[..., Any]
    higher_is_better: bool
    family: str = "image"
    needs_mask: bool = False
    mask_kind: str = "foreground"  # with needs_mask: the reader's foreground masks, or "visible" (bench.metrics.visibility)
    needs_predicted: tuple[str, ...] = ()  # Prediction fields it reads besides its family's (warp_consistency: depth)
    of_mean_draw: bool = False  # scored on the mean of a prediction's draws instead of on each draw
    reduce: Callable[[Any], float] | None = None
    details: Callable[[Any], dict] | None = None
    availability: Callable[[], str | None] | None = None
    revision: int = 1

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown metric family {self.family!r}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def unavailable(self) -> str | None:
        """Why this metric cannot run here, or None."""
        return self.availability() if self.availability else None

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip().split("\n")[0]


def metric(family: str, higher_is_better: bool, **kwargs: Any) -> Callable[[Callable], Metric]:
    """Decorator: ``@metric("depth", higher_is_better=False)`` turns a function into a :class:`Metric`."""
    return lambda fn: Metric(fn, higher_is_better, family, **kwargs)


#: Image metrics run on chunks of about this many pixels per call: their temporaries then
#: stay in the CPU cache, which made psnr+ssim+l1 about 5x faster at 128x128 (benchmarks/).
CHUNK_PIXELS = 32768


def in_chunks(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a per-image function ``fn(pred (N,...,H,W), target, *extra) -> (N,...)`` on chunks of the batch."""

    @functools.wraps(fn)
    def run(pred: Any, target: Any, *extra: Any) -> Any:
        import torch

        n = max(1, CHUNK_PIXELS // (pred.shape[-1] * pred.shape[-2]))
        if pred.shape[0] <= n:
            return fn(pred, target, *extra)
        parts = zip(pred.split(n), target.split(n), *(e.split(n) for e in extra))
        return torch.cat([fn(*p) for p in parts])

    return run


def image_metric(higher_is_better: bool, **kwargs: Any) -> Callable[[Callable], Metric]:
    """Decorator for ``fn(pred (N,3,H,W), target (N,3,H,W)) -> (N,)``, run in cache-sized chunks."""
    return lambda fn: Metric(in_chunks(fn), higher_is_better, "image", **kwargs)
