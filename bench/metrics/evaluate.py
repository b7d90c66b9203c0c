"""Applying metrics to predictions: which fields each family compares, and per-sample results.

A sample's value of a mean-type metric is the mean over its compared pairs (targets x
draws; for poses of a multi-camera sample, every camera pair i < j). A dataset-level
metric (with ``reduce``) keeps the sample's rows of statistics; its per-sample value is
``reduce`` over those rows alone. Non-finite values are failures, never averaged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from bench.metrics.base import MEAN_DRAW_SUFFIX, DepthOptions, Metric
from bench.types import Prediction, Sample

#: Prediction field compared by each family, and the ground-truth View field it is compared with.
PRED_FIELD = {"image": "image", "distribution": "image", "depth": "depth", "segmentation": "seg", "pose": "poses", "consistency": "image",
              "cost": "image"}
GT_FIELD = {"image": "image", "distribution": "image", "depth": "depth", "segmentation": "seg", "pose": "cam2world"}
#: Optional reader fields a metric's ground truth needs (the flags that make a reader load them).
READER_FIELD = {"depth": "source_depth", "segmentation": "source_seg"}


def not_predicted(metric: Metric, outputs: frozenset[str] | None) -> str | None:
    """Why a pipeline producing the Prediction fields ``outputs`` cannot be scored on ``metric``
    (e.g. "predicts no depth"), or None; ``outputs`` None (undeclared) is never refused."""
    if outputs is None:
        return None
    missing = [f for f in (PRED_FIELD[metric.family], *metric.needs_predicted) if f not in outputs]
    return f"predicts no {missing[0]}" if missing else None


def required_reader_fields(metric: Metric) -> set[str]:
    """Reader fields (``source_depth``, ``source_mask``, ``source_seg``) a metric's ground truth needs."""
    out = {READER_FIELD[metric.family]} if metric.family in READER_FIELD else set()
    if metric.needs_mask:
        out.add("source_depth" if metric.mask_kind == "visible" else "source_mask")
    return out


def with_depth_coverage(metrics: dict[str, Metric]) -> dict[str, Metric]:
    """``metrics`` with ``depth_coverage`` added after them when a depth metric is among them and it is not.

    Depth metrics are taken on the pixels a prediction covers (:mod:`bench.metrics.depth`), so
    their numbers are reported with the coverage, in every run and every ``score``.
    """
    from bench.metrics.depth import depth_coverage

    if any(m.family == "depth" for m in metrics.values()) and "depth_coverage" not in metrics:
        return {**metrics, "depth_coverage": depth_coverage}
    return metrics


def with_mean_draw(metrics: dict[str, Metric], draws: int) -> dict[str, Metric]:
    """With ``draws`` > 1, ``metrics`` plus, for each image metric, the same metric of the mean image of the draws.

    A sample's ``psnr`` is then the mean over its draws of each draw's PSNR (what one sample of the method
    scores), ``psnr_of_mean_draw`` the PSNR of the draws' mean (closer to the posterior mean, which
    regression methods predict): generative papers report either, so both are shown.
    """
    if draws <= 1:
        return metrics
    extra = {n + MEAN_DRAW_SUFFIX: replace(m, of_mean_draw=True) for n, m in metrics.items() if m.family == "image"}
    return {**metrics, **extra}


#: How predicted images are quantised before scoring (suite key ``metric_options.quantize``), each as
#: ``fn(image in [0, 1]) -> image on the 8-bit grid k / 255``.
QUANTIZERS = {
    # pixelNeRF (eval/eval.py writes ``(rgb * 255).astype(np.uint8)``, eval/calc_metrics.py reads the PNGs
    # back / 255): numpy's cast truncates, so 8-bit values are floor(255 x).
    "uint8_floor": lambda x: (x * 255).floor() / 255,
    # Rounding to the nearest 8-bit value, as torchvision's save_image (``mul(255).add_(0.5)``) and PIL saves.
    "uint8_round": lambda x: (x * 255).round() / 255,
}


@dataclass(frozen=True)
class MetricOptions:
    """Suite key ``metric_options``: how predictions are scored.

    ``quantize``: ``none`` scores the float images a pipeline returns; ``uint8_floor`` / ``uint8_round``
    (:data:`QUANTIZERS`) first put every predicted image on the 8-bit grid, as the published protocols
    that score saved PNGs do (e.g. pixelNeRF's SRN evaluation: ``uint8_floor``). ``depth``: see
    :class:`DepthOptions`.
    """

    depth: DepthOptions = field(default_factory=DepthOptions)
    quantize: Literal["none", "uint8_floor", "uint8_round"] = "none"


def quantized(pred: Prediction, mode: str) -> Prediction:
    """``pred`` with its image (T, D, 3, H, W) put on the 8-bit grid by ``QUANTIZERS[mode]``; unchanged for ``none``."""
    return pred if mode == "none" else replace(pred, image=QUANTIZERS[mode](pred.image))


@dataclass
class Score:
    """One metric of one sample: ``value`` (None for a set-level statistic of one sample) and ``stats`` rows."""

    sample: str
    scene: str
    metric: str
    value: float | None
    stats: np.ndarray | None = None
    not_applicable: str = ""  # why the sample's ground truth cannot score this metric (:func:`ground_truth_gaps`); value None


def ground_truth_gaps(metric: Metric, target: Tensor, mask: Tensor | None, options: MetricOptions) -> tuple[Tensor, str]:
    """Which pairs' ground truth holds nothing for ``metric`` to score -> ((N,) bool, why: "has no ..."), a gap of the
    dataset, not of the method.

    Depth metrics need a valid ground-truth pixel (``min_depth < gt``, ``<= max_depth`` when set); masked
    metrics a non-empty mask. Other metrics have no gaps. ``target`` is the family's (N, ...) ground truth.
    """
    if metric.family == "depth":
        from bench.metrics.depth import valid_target

        return ~valid_target(target, options.depth).flatten(1).any(1), "has no valid ground-truth depth"
    if metric.needs_mask and mask is not None:
        why = "has no pixel a source view sees" if metric.mask_kind == "visible" else "has an empty ground-truth mask"
        return ~mask.flatten(1).any(1), why
    return torch.zeros(target.shape[0], dtype=torch.bool, device=target.device), ""


def call_pairs(metric: Metric, pred: Tensor, target: Tensor, mask: Tensor | None, options: MetricOptions) -> Tensor:
    """Apply a pair metric (any family but consistency) to N flattened pairs: (N,) values or (N, K) stats."""
    if metric.family == "depth":
        return metric.fn(pred, target, options.depth)
    if metric.needs_mask:
        return metric.fn(pred, target, mask)
    return metric.fn(pred, target)


@dataclass
class Pairs:
    """A batch's (pred, target, mask) pairs for one metric family, flattened over samples, targets and draws.

    ``counts[k]`` consecutive pairs belong to sample ``owners[k]`` (its index in the batch); ``errors``
    holds ``(index, why)`` for each sample that has none (its prediction lacks the field compared).
    """

    pred: Tensor | None
    target: Tensor | None
    mask: Tensor | None
    owners: list[int]
    counts: list[int]
    errors: list[tuple[int, str]]


def gather_pairs(metric: Metric, samples: list[Sample], preds: list[Prediction]) -> Pairs:
    """The pairs of every sample of a batch for ``metric``'s family, each tensor built with one stack or cat.

    A sample's prediction (T, D, ...) pairs with its T targets' ground truth, each repeated D times;
    the pairs of a multi-camera pose sample are its camera pairs i < j (:func:`bench.metrics.pose.camera_pairs`).
    """
    field_ = PRED_FIELD[metric.family]
    owners, errors, predicted = [], [], []
    for i, p in enumerate(preds):
        value = getattr(p, field_)
        if value is not None and metric.of_mean_draw:
            value = value.mean(1, keepdim=True)  # (T, 1, ...): the mean image of the draws
        if value is None:
            errors.append((i, f"the pipeline predicts no {field_}"))
        else:
            owners.append(i)
            predicted.append(value)
    if not owners:
        return Pairs(None, None, None, [], [], errors)
    device = predicted[0].device
    targets = [v for i in owners for v in samples[i].targets]
    gt = torch.stack([getattr(v, GT_FIELD[metric.family]) for v in targets]).to(device)  # (sum of T, ...)
    if metric.family == "pose" and any(len(samples[i].targets) > 1 for i in owners):
        pred, target, counts = _pose_pairs(predicted, gt.split([len(samples[i].targets) for i in owners]))
        return Pairs(pred, target, None, owners, counts, errors)
    draws = [p.shape[1] for p in predicted]
    repeats = [d for i, d in zip(owners, draws) for _ in samples[i].targets]  # each target's ground truth, once per draw

    def per_draw(x: Tensor) -> Tensor:
        return x if max(draws) == 1 else x.repeat_interleave(torch.tensor(repeats, device=device), dim=0)

    mask = per_draw(torch.cat([_masks(metric, samples[i]) for i in owners]).to(device)) if metric.needs_mask else None
    pred = torch.cat([p.flatten(0, 1) for p in predicted])
    return Pairs(pred, per_draw(gt), mask, owners, [p.shape[0] * p.shape[1] for p in predicted], errors)


def _masks(metric: Metric, sample: Sample) -> Tensor:
    """(T, H, W) bool masks of a sample's targets for a masked metric: the reader's foreground masks, or the
    pixels the sources see (``mask_kind: visible``, :func:`bench.metrics.visibility.visible_from_sources`)."""
    if metric.mask_kind != "visible":
        return torch.stack([v.mask for v in sample.targets])
    from bench.metrics.visibility import visible_from_sources

    def stacked(views: list, name: str) -> Tensor:
        return torch.stack([getattr(v, name) for v in views])

    t, s = sample.targets, sample.sources
    return visible_from_sources(stacked(t, "depth"), stacked(t, "K"), stacked(t, "cam2world"), stacked(s, "depth"), stacked(s, "K"),
                                stacked(s, "cam2world"))


def _pose_pairs(predicted: list[Tensor], gts: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, list[int]]:
    """Pose pairs of multi-camera samples: per draw, each camera pair i < j once (:func:`bench.metrics.pose.camera_pairs`).

    ``predicted`` holds a (T, D, 4, 4) prediction per sample, ``gts`` its (T, 4, 4) ground truth.
    Returns (pred, target) of shape (P, 4, 4) and the pairs per sample, T(T−1)/2 · D each.
    """
    from bench.metrics.pose import camera_pairs

    preds, targets, counts = [], [], []
    for p, g in zip(predicted, gts):
        pairs = [camera_pairs(p[:, d]) for d in range(p.shape[1])]
        preds += pairs
        targets.append(camera_pairs(g).repeat(len(pairs), 1, 1))
        counts.append(sum(len(x) for x in pairs))
    return torch.cat(preds), torch.cat(targets), counts


def _consistency_rows(metric: Metric, pred: Prediction, sample: Sample) -> Tensor:
    """One value per draw: the metric of the generated set of views (T, 3, H, W)."""
    K = torch.stack([v.K for v in sample.targets]).to(pred.image.device)
    c2w = torch.stack([v.cam2world for v in sample.targets]).to(pred.image.device)
    return torch.stack([
        torch.as_tensor(metric.fn(pred.image[:, d], K, c2w, pred.depth[:, d] if pred.depth is not None else None))
        for d in range(pred.image.shape[1])
    ])


def _sample_score(metric: Metric, name: str, sample: Sample, rows: Tensor | float) -> Score:
    """One sample's :class:`Score` from its rows of the metric's output; a float is a mean-type metric's only value."""
    if isinstance(rows, float):
        if not math.isfinite(rows):
            raise ValueError(f"{name} is not finite: {[rows]}")
        return Score(sample.id, sample.spec.scene, name, rows)
    if not torch.isfinite(rows).all():
        raise ValueError(f"{name} is not finite: {rows.flatten()[:8].tolist()}")
    if metric.reduce is None:
        return Score(sample.id, sample.spec.scene, name, float(rows.mean()))
    stats = rows.numpy().reshape(rows.shape[0], -1)
    value = float(metric.reduce(stats))
    return Score(sample.id, sample.spec.scene, name, value if np.isfinite(value) else None, stats)


def cost_scores(samples: list[Sample], preds: list[Prediction], metrics: dict[str, Metric], seconds: float
                ) -> tuple[list[Score], list[tuple[str, str, str]]]:
    """The cost metrics (:mod:`bench.metrics.cost`) of a batch predicted in ``seconds``, shared evenly by its samples."""
    scores, failures = [], []
    for name, metric in metrics.items():
        if metric.family != "cost":
            continue
        for sample, pred in zip(samples, preds):
            try:
                value = metric.fn(seconds / len(samples), pred.image.shape[0] * pred.image.shape[1], pred.nfe)
                scores.append(Score(sample.id, sample.spec.scene, name, float(value)))
            except ValueError as exc:
                failures.append((sample.id, name, str(exc)))
    return scores, failures


def _without_gaps(
    metric: Metric, name: str, samples: list[Sample], owners: list[int], out: Tensor, counts: list[int], gap: Tensor, why: str,
    scores: list[Score],
) -> tuple[list[int], list[Tensor | float]]:
    """Split a metric's output over the pairs by sample, leaving out the pairs whose ground truth has a gap.

    A sample all of whose pairs have gaps gets a not-applicable :class:`Score` (appended to ``scores``) instead
    of rows; the others keep the rows of their pairs without gaps. Returns (owners, rows) of the rest.
    """
    if not gap.any():
        if metric.reduce is None and out.dim() == 1 and all(c == 1 for c in counts):
            return owners, out.tolist()  # one value each: floats, no tensor per sample
        return owners, list(out.split(counts))
    kept_owners, rows = [], []
    for i, part, holes in zip(owners, out.split(counts), gap.split(counts)):
        if holes.all():
            scores.append(Score(samples[i].id, samples[i].spec.scene, name, None, not_applicable=why))
        else:
            kept_owners.append(i)
            rows.append(part[~holes])
    return kept_owners, rows


def score_samples(
    samples: list[Sample], preds: list[Prediction], metrics: dict[str, Metric], options: MetricOptions
) -> tuple[list[Score], list[tuple[str, str, str]]]:
    """Score a batch: per-sample :class:`Score` s, and failures as (sample, metric, error).

    Predicted images are first quantised as ``options.quantize`` asks (:func:`quantized`).

    The pairs of a family (e.g. every image metric's) are gathered once per batch and each metric is one
    call on all of them. Per pair of a 64x64 batch, stacking and splitting per sample and metric cost
    more than psnr and l1 themselves.
    """
    scores: list[Score] = []
    failures: list[tuple[str, str, str]] = []
    gathered: dict[tuple[str, bool, str, bool], Pairs] = {}
    preds = [quantized(p, options.quantize) for p in preds]
    for name, metric in metrics.items():
        if metric.unavailable() or metric.family == "cost":  # cost is measured by the runner (cost_scores)
            continue
        try:
            if metric.family == "consistency":
                owners = list(range(len(samples)))
                rows: list[Tensor | float] = [_consistency_rows(metric, p, s).detach().double().cpu() for s, p in zip(samples, preds)]
            else:
                key = (metric.family, metric.needs_mask, metric.mask_kind, metric.of_mean_draw)
                if key not in gathered:
                    gathered[key] = gather_pairs(metric, samples, preds)
                pairs = gathered[key]
                failures += [(samples[i].id, name, why) for i, why in pairs.errors]
                owners, rows = pairs.owners, []
                if owners:
                    out = call_pairs(metric, pairs.pred, pairs.target, pairs.mask, options).detach().double().cpu()
                    gap, why = ground_truth_gaps(metric, pairs.target, pairs.mask, options)
                    owners, rows = _without_gaps(metric, name, samples, owners, out, pairs.counts, gap.cpu(), why, scores)
        except Exception as exc:  # noqa: BLE001 - a metric error fails this batch's samples, not the run
            failures += [(s.id, name, f"{type(exc).__name__}: {exc}") for s in samples]
            continue
        for i, r in zip(owners, rows):
            try:
                scores.append(_sample_score(metric, name, samples[i], r))
            except ValueError as exc:
                failures.append((samples[i].id, name, str(exc)))
    return scores, failures
