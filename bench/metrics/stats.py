"""Statistics over per-sample results: means with bootstrap CIs, dataset-level reductions,
per-scene aggregation, and paired tests between pipelines."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from bench.metrics.base import Metric

CONFIDENCE = 0.95
N_RESAMPLES = 2000
N_RESAMPLES_REDUCED = 500  # dataset-level statistics recompute ``reduce`` per resample


def bootstrap_ci(values: np.ndarray, seed: int = 0, n_resamples: int = N_RESAMPLES) -> tuple[float, float]:
    """95 % percentile-bootstrap confidence interval of the mean (Efron & Tibshirani 1993, ch. 13).

    ``n_resamples`` resamples of the values with replacement, drawn from ``numpy.random.default_rng(seed)``;
    the interval's ends are the 2.5 and 97.5 percentiles of the resample means. The draws and the percentile
    arithmetic are those of ``scipy.stats.bootstrap(..., method="percentile")``, whose intervals these equal to
    the bit (tests/test_score_batches.py); done here because importing ``scipy.stats`` takes ~0.5 s, a tenth of
    a 10,000-sample identity run. Deterministic for a seed. A single value, or identical values, give a
    zero-width interval.
    """
    return bootstrap_cis([values], seed, n_resamples)[0]


def bootstrap_cis(arrays: list[np.ndarray], seed: int = 0, n_resamples: int = N_RESAMPLES) -> list[tuple[float, float]]:
    """:func:`bootstrap_ci` of each array, with the resample indices of arrays of one length drawn once.

    For a seed the draws depend only on the number of values, so the metrics and pipelines of a
    summary scored on the same samples resample the same indices: drawing them is most of the cost
    (10,000 values: 31 ms of the 47 ms of one interval), and each array's interval is bit-equal to
    its own :func:`bootstrap_ci`.
    """
    out: list[tuple[float, float]] = []
    by_size: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
    for i, values in enumerate(arrays):
        values = np.asarray(values, dtype=np.float64)
        mean = float(values.mean())
        out.append((mean, mean))  # a single value, or identical values: zero width
        if values.size >= 2 and np.ptp(values) != 0:
            by_size[values.size].append((i, values))
    for n, group in by_size.items():
        rng = np.random.default_rng(seed)
        # ``batch`` resamples are drawn at once: their (batch, n) indices and values are the temporary peak, ~23 MiB
        # at 1e6 values whatever n (4e6 gave up to 92 MiB, and was no faster). The draws come from the generator in
        # the same order whatever the batch, so the interval does not depend on it (checked for n from 2 to 250,000).
        batch = max(1, 1_000_000 // n)
        means: list[list[np.ndarray]] = [[] for _ in group]
        for start in range(0, n_resamples, batch):
            idx = rng.integers(0, n, (min(batch, n_resamples - start), n))
            for chunks, (_, values) in zip(means, group):
                chunks.append(values[idx].mean(axis=-1))
        alpha = (1 - CONFIDENCE) / 2
        for chunks, (i, _) in zip(means, group):
            ordered = np.sort(np.concatenate(chunks))
            out[i] = _sorted_percentile(ordered, alpha), _sorted_percentile(ordered, 1 - alpha)
    return out


class PendingCIs:
    """Bootstrap CIs of summary entries, requested one by one and computed together by :meth:`compute`
    (:func:`bootstrap_cis`: entries over the same samples share their draws)."""

    def __init__(self, seed: int):
        self.seed = seed
        self.requests: list[tuple[dict, np.ndarray]] = []

    def request(self, entry: dict, values: np.ndarray) -> None:
        """Set ``entry["ci95"]`` to the interval of the mean of ``values`` at :meth:`compute`."""
        self.requests.append((entry, values))

    def compute(self) -> None:
        for (entry, _), ci in zip(self.requests, bootstrap_cis([v for _, v in self.requests], self.seed)):
            entry["ci95"] = list(ci)
        self.requests = []


def _sorted_percentile(ordered: np.ndarray, p: float) -> float:
    """The ``p`` quantile (0..1) of sorted values, type 7 of Hyndman & Fan (1996), numpy's default: linear
    between the order statistics around the 1-based position ``(N - 1) p + 1``, written ``N p + (1 - p)``
    as ``scipy.stats.quantile`` computes it (the rounding of the result depends on it)."""
    position = p * len(ordered) + (1 - p)
    whole, frac = int(position // 1), position % 1
    return float((1 - frac) * ordered[whole - 1] + frac * ordered[min(whole, len(ordered) - 1)])


def reduced_ci(metric: Metric, units: list[np.ndarray], seed: int = 0) -> tuple[float, float] | None:
    """95 % percentile-bootstrap CI of a dataset-level metric, resampling units (samples or scenes)."""
    if len(units) < 2 or metric.family == "distribution":  # feature-set statistics are not bootstrapped
        return None
    from scipy import stats  # here, not at module level: importing scipy.stats takes ~0.5 s, which mean-type metrics do without

    def statistic(idx: np.ndarray) -> float:
        return float(metric.reduce(np.concatenate([units[int(i)] for i in idx])))

    res = stats.bootstrap(
        (np.arange(len(units)),), statistic, confidence_level=CONFIDENCE, n_resamples=N_RESAMPLES_REDUCED,
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
    from scipy import stats  # see reduced_ci

    return float(stats.wilcoxon(a, b).pvalue)


def aggregate(
    metric: Metric, samples: list[str], scenes: list[str], values: list, stats_rows: list, seed: int, per_scene: bool,
    pending: PendingCIs | None = None,
) -> dict:
    """Summary entry of one metric: mean (or dataset-level value), 95 % CI, n, and details.

    ``per_scene`` averages samples within each scene first (mean-type metrics) or resamples
    whole scenes (dataset-level metrics); ``n`` then counts scenes. With ``pending``, a mean's
    CI is left for :meth:`PendingCIs.compute` to fill in.
    """
    entry: dict = {"mean": None, "ci95": None, "n": 0, "higher_is_better": metric.higher_is_better}
    if not samples:
        return entry
    if metric.reduce is None:
        vals = np.asarray(values, dtype=np.float64)
        if per_scene:
            _, groups = group_by_scene(samples, scenes, list(vals))
            vals = np.array([np.mean(g) for g in groups])
        entry.update(mean=float(vals.mean()), n=int(vals.size))
        if pending is None:
            entry["ci95"] = list(bootstrap_ci(vals, seed))
        else:
            pending.request(entry, vals)
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
