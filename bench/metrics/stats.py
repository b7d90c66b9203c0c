"""Statistics over per-sample results: means with bootstrap CIs, dataset-level reductions,
per-scene aggregation, and paired tests between pipelines."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from scipy import stats

from bench.metrics.base import Metric

N_RESAMPLES = 2000
N_RESAMPLES_REDUCED = 500  # dataset-level statistics recompute ``reduce`` per resample


def bootstrap_ci(values: np.ndarray, seed: int = 0, n_resamples: int = N_RESAMPLES) -> tuple[float, float]:
    """95 % percentile-bootstrap confidence interval of the mean (``scipy.stats.bootstrap``).

    Deterministic for a seed. A single value, or identical values, give a zero-width interval.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2 or np.ptp(values) == 0:
        return float(values.mean()), float(values.mean())
    res = stats.bootstrap(
        (values,), np.mean, confidence_level=0.95, n_resamples=n_resamples, method="percentile",
        rng=np.random.default_rng(seed), batch=max(1, 4_000_000 // values.size),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def reduced_ci(metric: Metric, units: list[np.ndarray], seed: int = 0) -> tuple[float, float] | None:
    """95 % percentile-bootstrap CI of a dataset-level metric, resampling units (samples or scenes)."""
    if len(units) < 2 or metric.family == "distribution":  # feature-set statistics are not bootstrapped
        return None

    def statistic(idx: np.ndarray) -> float:
        return float(metric.reduce(np.concatenate([units[int(i)] for i in idx])))

    res = stats.bootstrap(
        (np.arange(len(units)),), statistic, confidence_level=0.95, n_resamples=N_RESAMPLES_REDUCED,
        method="percentile", vectorized=False, rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def group_by_scene(keys: list[str], scenes: list[str], values: list) -> tuple[list[str], list]:
    """Group per-sample entries by scene: scene ids, and per scene the list of its values."""
    groups: dict[str, list] = defaultdict(list)
    for scene, value in zip(scenes, values):
        groups[scene].append(value)
    return list(groups), list(groups.values())


def paired_p_value(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``) on paired values.

    Returns 1.0 when every pair is equal and None with no pairs.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return None
    if np.all(a == b):
        return 1.0
    return float(stats.wilcoxon(a, b).pvalue)


def aggregate(metric: Metric, samples: list[str], scenes: list[str], values: list, stats_rows: list, seed: int, per_scene: bool) -> dict:
    """Summary entry of one metric: mean (or dataset-level value), 95 % CI, n, and details.

    ``per_scene`` averages samples within each scene first (mean-type metrics) or resamples
    whole scenes (dataset-level metrics); ``n`` then counts scenes.
    """
    entry: dict = {"mean": None, "ci95": None, "n": 0, "higher_is_better": metric.higher_is_better}
    if not samples:
        return entry
    if metric.reduce is None:
        vals = np.asarray(values, dtype=np.float64)
        if per_scene:
            _, groups = group_by_scene(samples, scenes, list(vals))
            vals = np.array([np.mean(g) for g in groups])
        entry.update(mean=float(vals.mean()), ci95=list(bootstrap_ci(vals, seed)), n=int(vals.size))
        return entry
    units = group_by_scene(samples, scenes, stats_rows)[1] if per_scene else [[s] for s in stats_rows]
    units = [np.concatenate(u) for u in units]
    pooled = np.concatenate(units)
    ci = reduced_ci(metric, units, seed)
    entry.update(mean=float(metric.reduce(pooled)), ci95=list(ci) if ci else None, n=len(units))
    if metric.details:
        entry["details"] = metric.details(pooled)
    return entry


def unit_values(samples: list[str], scenes: list[str], values: list, per_scene: bool) -> dict[str, float]:
    """Per-sample (or per-scene mean) values keyed by unit, for paired tests; None values skipped."""
    pairs = [(s, sc, v) for s, sc, v in zip(samples, scenes, values) if v is not None]
    if not per_scene:
        return {s: v for s, _, v in pairs}
    keys, groups = group_by_scene([p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs])
    return {k: float(np.mean(g)) for k, g in zip(keys, groups)}
