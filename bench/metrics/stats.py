"""Statistics over per-sample values."""

from __future__ import annotations

import numpy as np
from scipy import stats


def bootstrap_ci(values: np.ndarray, seed: int = 0, n_resamples: int = 2000) -> tuple[float, float]:
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
