"""Statistics: bootstrap CI against a plain numpy bootstrap, paired test, per-scene aggregation, reductions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from bench.metrics.base import Metric
from bench.metrics.stats import aggregate, bootstrap_ci, paired_p_value, unit_values


def test_bootstrap_ci_matches_plain_numpy_bootstrap():
    rng = np.random.default_rng(1)
    values = rng.normal(10.0, 2.0, size=400)
    lo, hi = bootstrap_ci(values, seed=0)
    means = values[rng.integers(0, values.size, size=(20000, values.size))].mean(1)
    ref_lo, ref_hi = np.percentile(means, [2.5, 97.5])
    assert lo == pytest.approx(ref_lo, abs=0.03) and hi == pytest.approx(ref_hi, abs=0.03)
    assert (hi - lo) == pytest.approx(2 * 1.96 * values.std(ddof=1) / np.sqrt(400), rel=0.1)  # normal theory
    assert bootstrap_ci(values, seed=0) == (lo, hi)  # deterministic
    assert bootstrap_ci(np.array([3.0, 3.0, 3.0])) == (3.0, 3.0)


def test_paired_p_value_is_wilcoxon_and_sensitive_to_pairing():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 50)
    b = a + 0.3 + rng.normal(0, 0.05, 50)  # consistently better, paired
    assert paired_p_value(a, b) == pytest.approx(sps.wilcoxon(a, b).pvalue)
    assert paired_p_value(a, b) < 1e-6
    assert paired_p_value(a, rng.permutation(b)) > paired_p_value(a, b)
    assert paired_p_value(a, a) == 1.0
    assert paired_p_value(np.array([]), np.array([])) is None


MEAN = Metric(lambda p, t: p, higher_is_better=True)


def test_per_scene_aggregation_weights_scenes_equally():
    samples = ["a/1", "a/2", "a/3", "b/1"]
    scenes = ["a", "a", "a", "b"]
    values = [1.0, 1.0, 1.0, 5.0]
    by_sample = aggregate(MEAN, samples, scenes, values, [None] * 4, seed=0, per_scene=False)
    by_scene = aggregate(MEAN, samples, scenes, values, [None] * 4, seed=0, per_scene=True)
    assert by_sample["mean"] == 2.0 and by_sample["n"] == 4
    assert by_scene["mean"] == 3.0 and by_scene["n"] == 2
    assert unit_values(samples, scenes, values, per_scene=True) == {"a": 1.0, "b": 5.0}


def test_dataset_level_metric_pools_statistics():
    ratio = Metric(lambda p, t: p, higher_is_better=True, family="segmentation",
                   reduce=lambda s: s[:, 0].sum() / s[:, 1].sum(), details=lambda s: {"total": float(s[:, 1].sum())})
    stats = [np.array([[1.0, 10.0]]), np.array([[9.0, 10.0]]), np.array([[0.0, 80.0]])]
    entry = aggregate(ratio, ["x", "y", "z"], ["x", "y", "z"], [0.1, 0.9, 0.0], stats, seed=0, per_scene=False)
    assert entry["mean"] == pytest.approx(10 / 100)  # pooled, not the mean of per-sample ratios (0.333)
    assert entry["details"] == {"total": 100.0}
    assert entry["ci95"][0] <= entry["mean"] <= entry["ci95"][1]
