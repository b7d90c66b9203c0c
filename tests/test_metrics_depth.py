"""Depth metrics against per-image numpy formulas, closed-form cases, and empty images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.metrics import depth
from bench.metrics.base import DepthOptions, Metric

NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "silog", "log10", "delta1", "delta2", "delta3")


def _reference(pred: np.ndarray, target: np.ndarray, options: DepthOptions) -> dict[str, np.ndarray]:
    """The usual KITTI/NYU evaluation loop, one image at a time with boolean masks, with one difference named:
    the loop assumes a dense prediction; here a pixel the prediction leaves at 0 (a hole) is left out too."""
    out: dict[str, list[float]] = {name: [] for name in NAMES}
    for p, g in zip(pred.astype(np.float64), target.astype(np.float64)):
        valid = (g > options.min_depth) & (p > 0)
        if options.max_depth is not None:
            valid &= g <= options.max_depth
        if not valid.any():
            for name in NAMES:
                out[name].append(np.nan)
            continue
        p, g = p[valid], g[valid]
        if options.median_scaling:
            p = p * np.median(g) / np.median(p)
        p = np.clip(p, options.min_depth, options.max_depth)
        d = np.log(p) - np.log(g)
        ratio = np.maximum(p / g, g / p)
        out["abs_rel"].append(np.mean(np.abs(p - g) / g))
        out["sq_rel"].append(np.mean((p - g) ** 2 / g))
        out["rmse"].append(np.sqrt(np.mean((p - g) ** 2)))
        out["rmse_log"].append(np.sqrt(np.mean(d**2)))
        out["silog"].append(100 * np.sqrt(np.mean(d**2) - np.mean(d) ** 2))
        out["log10"].append(np.mean(np.abs(np.log10(p) - np.log10(g))))
        for k in (1, 2, 3):
            out[f"delta{k}"].append(np.mean(ratio < 1.25**k))
    return {name: np.array(v) for name, v in out.items()}


def _random_depths(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(5, 16, 20) float32 maps: ~20 % invalid targets, targets beyond 10, predictions below 0.5 and above 10."""
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.2, 15.0, (5, 16, 20))
    target[rng.random(target.shape) < 0.2] = 0.0
    pred = rng.uniform(0.2, 15.0, target.shape) * rng.uniform(0.5, 3.0, (5, 1, 1))  # per-image scale
    pred[rng.random(pred.shape) < 0.05] = 0.0
    return torch.from_numpy(pred).float(), torch.from_numpy(target).float()


OPTIONS = [
    DepthOptions(),
    DepthOptions(median_scaling=True),
    DepthOptions(min_depth=0.5, max_depth=10.0),
    DepthOptions(median_scaling=True, min_depth=0.5, max_depth=10.0),
]


@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "median", "caps", "median+caps"])
def test_matches_numpy_reference(options: DepthOptions):
    pred, target = _random_depths()
    ref = _reference(pred.numpy(), target.numpy(), options)
    for name in NAMES:
        m = getattr(depth, name)
        assert isinstance(m, Metric) and m.family == "depth"
        assert m.higher_is_better == name.startswith("delta")
        got = m(pred, target, options)
        assert got.shape == (5,)
        np.testing.assert_allclose(got.numpy(), ref[name], rtol=1e-6, atol=1e-4, err_msg=name)


def test_median_scaling_uses_mean_of_middle_values():
    """Even count of valid pixels: the median is the mean of the two middle values, as np.median."""
    target = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    pred = torch.tensor([[[1.0, 1.0, 3.0, 5.0]]])  # median 2, target median 2.5 -> scale 1.25
    scaled = pred * 1.25
    expected = ((scaled - target).abs() / target).mean()
    assert depth.abs_rel(pred, target, DepthOptions(median_scaling=True)).item() == pytest.approx(expected.item())


def test_closed_form():
    _, target = _random_depths(1)
    target = target.clamp(min=0.5)
    plain, scaled = DepthOptions(), DepthOptions(median_scaling=True)
    for name in ("abs_rel", "sq_rel", "rmse", "rmse_log", "silog", "log10"):
        assert torch.allclose(getattr(depth, name)(target, target, plain), torch.zeros(5, dtype=torch.float64)), name
    for name in ("delta1", "delta2", "delta3"):
        assert torch.equal(getattr(depth, name)(target, target, plain), torch.ones(5, dtype=torch.float64)), name

    double = 2 * target
    torch.testing.assert_close(depth.abs_rel(double, target, plain), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(depth.rmse_log(double, target, plain), torch.full((5,), math.log(2), dtype=torch.float64))
    torch.testing.assert_close(depth.silog(double, target, plain), torch.zeros(5, dtype=torch.float64), atol=1e-5, rtol=0)  # scale-invariant
    for name in ("delta1", "delta2", "delta3"):  # ratio 2 > 1.25³ = 1.953
        assert torch.equal(getattr(depth, name)(double, target, plain), torch.zeros(5, dtype=torch.float64)), name
    torch.testing.assert_close(depth.abs_rel(double, target, scaled), torch.zeros(5, dtype=torch.float64), atol=1e-6, rtol=0)
    assert torch.equal(depth.delta1(double, target, scaled), torch.ones(5, dtype=torch.float64))


@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "median", "caps", "median+caps"])
def test_image_without_valid_pixel_is_nan(options: DepthOptions):
    pred, target = _random_depths(2)
    target[1] = 0.0
    target[3] = 50.0  # valid only without max_depth
    ref = _reference(pred.numpy(), target.numpy(), options)
    for name in NAMES:
        got = getattr(depth, name)(pred, target, options)
        assert torch.isnan(got[1]), name
        assert torch.isnan(got[3]) == (options.max_depth is not None), name
        keep = [0, 2, 4]
        assert torch.isfinite(got[keep]).all(), name
        np.testing.assert_allclose(got.numpy(), ref[name], rtol=1e-6, atol=1e-4, err_msg=name)


def test_holes_in_a_prediction_are_left_out_and_counted_by_depth_coverage():
    """A true depth map with about 60 % holes: perfect where it covers, coverage about 0.4 (holes are not depths of min_depth)."""
    rng = np.random.default_rng(4)
    target = torch.from_numpy(rng.uniform(1.0, 3.0, (2, 10, 10)))
    target[1, :5] = 0.0  # half of image 1 has no ground truth
    holes = torch.from_numpy(rng.random((2, 10, 10)) < 0.6)
    pred = torch.where(holes, 0.0, target)
    plain = DepthOptions()
    for name in ("abs_rel", "sq_rel", "rmse", "rmse_log", "silog", "log10"):
        torch.testing.assert_close(getattr(depth, name)(pred, target, plain), torch.zeros(2, dtype=torch.float64), atol=1e-7, rtol=0)
    for name in ("delta1", "delta2", "delta3"):
        assert torch.equal(getattr(depth, name)(pred, target, plain), torch.ones(2, dtype=torch.float64)), name
    covered = (~holes & (target > 0)).sum((1, 2)).double() / (target > 0).sum((1, 2))
    torch.testing.assert_close(depth.depth_coverage(pred, target, plain), covered)
    assert 0.3 < covered.min() and covered.max() < 0.6
    assert depth.depth_coverage(target, target, plain).tolist() == [1.0, 1.0]
    nan_pred = torch.where(holes, torch.nan, target)  # NaN is no depth either
    torch.testing.assert_close(depth.depth_coverage(nan_pred, target, plain), covered)
    assert depth.abs_rel(torch.zeros_like(target), target, plain).isnan().all()  # nothing predicted: no value (a failure)
    assert depth.depth_coverage(torch.zeros_like(target), target, plain).tolist() == [0.0, 0.0]


def test_depth_coverage_is_reported_wherever_depth_metrics_are():
    from bench.metrics.evaluate import with_depth_coverage
    from bench.registry import registry
    from bench.score import resolve_metrics

    metrics = registry("metrics")
    assert list(with_depth_coverage({"abs_rel": metrics.get("abs_rel")})) == ["abs_rel", "depth_coverage"]
    assert list(with_depth_coverage({"psnr": metrics.get("psnr")})) == ["psnr"]
    assert list(resolve_metrics(["delta1"], ("depth",))) == ["delta1", "depth_coverage"]
    assert depth.depth_coverage.revision == 1 and depth.abs_rel.revision == 2
