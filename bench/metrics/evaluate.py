"""Applying metrics to predictions: which fields each family compares, and per-sample results.

A sample's value of a mean-type metric is the mean over its compared pairs (targets x
draws; for poses of a multi-camera sample, all ordered camera pairs). A dataset-level
metric (with ``reduce``) keeps the sample's rows of statistics; its per-sample value is
``reduce`` over those rows alone. Non-finite values are failures, never averaged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from bench.metrics.base import DepthOptions, Metric
from bench.types import Prediction, Sample

#: Prediction field compared by each family, and the ground-truth View field it is compared with.
PRED_FIELD = {"image": "image", "distribution": "image", "depth": "depth", "segmentation": "seg", "pose": "poses", "consistency": "image"}
GT_FIELD = {"image": "image", "distribution": "image", "depth": "depth", "segmentation": "seg", "pose": "cam2world"}
#: Optional reader fields a metric's ground truth needs (the flags that make a reader load them).
READER_FIELD = {"depth": "source_depth", "segmentation": "source_seg"}


def not_predicted(metric: Metric, outputs: frozenset[str] | None) -> str | None:
    """Why a pipeline producing the Prediction fields ``outputs`` cannot be scored on ``metric``
    (e.g. "predicts no depth"), or None; ``outputs`` None (undeclared) is never refused."""
    field_ = PRED_FIELD[metric.family]
    return None if outputs is None or field_ in outputs else f"predicts no {field_}"


def required_reader_fields(metric: Metric) -> set[str]:
    """Reader fields (``source_depth``, ``source_mask``, ``source_seg``) a metric's ground truth needs."""
    out = {READER_FIELD[metric.family]} if metric.family in READER_FIELD else set()
    return out | ({"source_mask"} if metric.needs_mask else set())


@dataclass(frozen=True)
class MetricOptions:
    """Suite key ``metric_options``: settings per metric family."""

    depth: DepthOptions = field(default_factory=DepthOptions)


@dataclass
class Score:
    """One metric of one sample: ``value`` (None for a set-level statistic of one sample) and ``stats`` rows."""

    sample: str
    scene: str
    metric: str
    value: float | None
    stats: np.ndarray | None = None
    group: str = ""  # e.g. the camera-radius bin of the sample, when the suite defines bins


def call_pairs(metric: Metric, pred: Tensor, target: Tensor, mask: Tensor | None, options: MetricOptions) -> Tensor:
    """Apply a pair metric (any family but consistency) to N flattened pairs: (N,) values or (N, K) stats."""
    if metric.family == "depth":
        return metric.fn(pred, target, options.depth)
    if metric.needs_mask:
        return metric.fn(pred, target, mask)
    return metric.fn(pred, target)


def _pairs(metric: Metric, sample: Sample, pred: Prediction) -> tuple[Tensor, Tensor, Tensor | None]:
    """The (pred, target, mask) pairs of one sample, flattened over targets and draws."""
    p = getattr(pred, PRED_FIELD[metric.family])
    if p is None:
        raise ValueError(f"the pipeline predicts no {PRED_FIELD[metric.family]}")
    g = torch.stack([getattr(v, GT_FIELD[metric.family]) for v in sample.targets]).to(p.device)  # (T, ...)
    if metric.family == "pose" and len(sample.targets) > 1:
        from bench.metrics.pose import ordered_pairs

        pairs = [ordered_pairs(p[:, d]) for d in range(p.shape[1])]
        return torch.cat(pairs), ordered_pairs(g).repeat(len(pairs), 1, 1), None
    draws = p.shape[1]
    gt = g[:, None].expand(-1, draws, *g.shape[1:]).flatten(0, 1)
    mask = None
    if metric.needs_mask:
        m = torch.stack([v.mask for v in sample.targets]).to(p.device)
        mask = m[:, None].expand(-1, draws, *m.shape[1:]).flatten(0, 1)
    return p.flatten(0, 1), gt, mask


def _consistency_rows(metric: Metric, pred: Prediction, sample: Sample) -> Tensor:
    """One value per draw: the metric of the generated set of views (T, 3, H, W)."""
    K = torch.stack([v.K for v in sample.targets]).to(pred.image.device)
    c2w = torch.stack([v.cam2world for v in sample.targets]).to(pred.image.device)
    return torch.stack([
        torch.as_tensor(metric.fn(pred.image[:, d], K, c2w, pred.depth[:, d] if pred.depth is not None else None))
        for d in range(pred.image.shape[1])
    ])


def _sample_score(metric: Metric, name: str, sample: Sample, rows: Tensor) -> Score:
    rows = rows.detach().double().cpu()
    if not torch.isfinite(rows).all():
        raise ValueError(f"{name} is not finite: {rows.flatten()[:8].tolist()}")
    if metric.reduce is None:
        return Score(sample.id, sample.spec.scene, name, float(rows.mean()))
    stats = rows.numpy().reshape(rows.shape[0], -1)
    value = float(metric.reduce(stats))
    return Score(sample.id, sample.spec.scene, name, value if np.isfinite(value) else None, stats)


def score_samples(
    samples: list[Sample], preds: list[Prediction], metrics: dict[str, Metric], options: MetricOptions
) -> tuple[list[Score], list[tuple[str, str, str]]]:
    """Score a batch: per-sample :class:`Score` s, and failures as (sample, metric, error)."""
    scores: list[Score] = []
    failures: list[tuple[str, str, str]] = []
    for name, metric in metrics.items():
        if metric.unavailable():
            continue
        rows: dict[int, Tensor] = {}
        try:
            if metric.family == "consistency":
                rows = {i: _consistency_rows(metric, p, s) for i, (s, p) in enumerate(zip(samples, preds))}
            else:
                gathered, owners = [], []
                for i, (s, p) in enumerate(zip(samples, preds)):
                    try:
                        gathered.append(_pairs(metric, s, p))
                        owners.append(i)
                    except ValueError as exc:
                        failures.append((s.id, name, str(exc)))
                if gathered:
                    counts = [g[0].shape[0] for g in gathered]
                    masks = [g[2] for g in gathered]
                    out = call_pairs(
                        metric,
                        torch.cat([g[0] for g in gathered]),
                        torch.cat([g[1] for g in gathered]),
                        torch.cat(masks) if metric.needs_mask else None,
                        options,
                    )
                    rows = dict(zip(owners, out.split(counts)))
        except Exception as exc:  # noqa: BLE001 - a metric error fails this batch's samples, not the run
            failures += [(s.id, name, f"{type(exc).__name__}: {exc}") for s in samples]
            continue
        for i, r in rows.items():
            try:
                scores.append(_sample_score(metric, name, samples[i], r))
            except ValueError as exc:
                failures.append((samples[i].id, name, str(exc)))
    return scores, failures
