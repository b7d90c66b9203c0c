"""Statistics: bootstrap CI against a plain numpy bootstrap, paired test, per-scene aggregation, reductions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from bench.metrics.base import Metric
from bench.metrics.stats import aggregate, bootstrap_ci, paired_p_value, unit_values
from bench.runner.summary import _mark_best
from bench.store import StoredScores


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


# --------------------------------------------------------------------------- best pipeline


def _stored(values: dict[str, float | None]) -> StoredScores:
    ids = sorted(values)
    return StoredScores(ids, ["scene"] * len(ids), [values[s] for s in ids], [None] * len(ids))


def _ranked(scored: dict, metric: Metric = MEAN, per_scene: bool = False) -> dict:
    results = {p: {"m": {"mean": float(np.mean([v for v in s.values if v is not None]))}} for p, s in scored.items()}
    _mark_best(results, "m", metric, scored, per_scene)
    return {p: r["m"] for p, r in results.items()}


def test_best_is_decided_on_the_samples_every_pipeline_scored():
    """A pipeline that failed on the hard samples is not ranked on the easy ones alone."""
    full = _stored({"easy1": 20.0, "easy2": 22.0, "hard1": 10.0, "hard2": 12.0})
    fails_hard = _stored({"easy1": 19.0, "easy2": 21.0})  # mean 20 > 16, but worse on every common sample
    ranked = _ranked({"full": full, "fails_hard": fails_hard})
    assert ranked["full"]["best"] and not ranked["fails_hard"]["best"]
    assert ranked["full"]["compared_on"] == ranked["fails_hard"]["compared_on"] == 2
    assert ranked["fails_hard"]["p_vs_best"] == pytest.approx(paired_p_value(np.array([19.0, 21.0]), np.array([20.0, 22.0])))


def test_equal_pipelines_are_both_best_whatever_their_order():
    same = {"s1": 1.0, "s2": 2.0, "s3": 4.0}
    for order in (("a", "b"), ("b", "a")):
        ranked = _ranked({name: _stored(same) for name in order})
        assert all(r["best"] and r["p_vs_best"] is None for r in ranked.values())


def test_distribution_metrics_get_no_per_sample_p_value():
    """A pooled statistic (FID) is compared pooled; per-sample values of a few images are not tested."""
    fid = Metric(lambda *a: None, higher_is_better=False, family="distribution", reduce=lambda rows: float(rows.sum()))

    def pooled(rows: list[float]) -> StoredScores:
        ids = [f"s{i}" for i in range(len(rows))]
        return StoredScores(ids, ["x"] * len(ids), [None] * len(ids), [np.array([[r]]) for r in rows])

    results = {"a": {"m": {"mean": 3.0}}, "b": {"m": {"mean": 5.0}}}
    _mark_best(results, "m", fid, {"a": pooled([1.0, 2.0]), "b": pooled([2.0, 3.0])}, per_scene=False)
    assert results["a"]["m"]["best"] and not results["b"]["m"]["best"] and results["b"]["m"]["p_vs_best"] is None
