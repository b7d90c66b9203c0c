"""The batched parts of the run loop against independent per-sample computations: scoring a batch
(pairs gathered once per metric family), the bootstrap CI against scipy.stats.bootstrap, camera
checks on Python floats, and the malloc settings of `nvsbench run`."""

from __future__ import annotations

import math
import platform

import numpy as np
import pytest
import torch
from scipy import stats as sps

from bench.allocator import keep_freed_memory
from bench.data.base import rotation_defect
from bench.metrics.evaluate import MetricOptions, score_samples
from bench.metrics.image import l1, psnr, psnr_masked
from bench.metrics.pose import camera_pairs, rot_err_deg
from bench.metrics.stats import bootstrap_ci, bootstrap_cis
from bench.runner.execute import check_prediction
from bench.types import Prediction, Sample, SampleSpec, View

H = W = 12


def _camera(seed: int) -> torch.Tensor:
    """A random rigid cam2world (4, 4), float32."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3], c2w[:3, 3] = q * torch.sign(torch.linalg.det(q)), torch.randn(3, generator=g, dtype=torch.float64)
    return c2w.float()


def _batch(targets: int, draws: int, seed: int) -> tuple[list[Sample], list[Prediction]]:
    """Four samples of ``targets`` target views each and predictions with ``draws`` draws (image, poses)."""
    g = torch.Generator().manual_seed(seed)
    K = torch.tensor([[10.0, 0, 6], [0, 10, 6], [0, 0, 1]])
    samples, preds = [], []
    for b in range(4):
        views = [View(f"v{t}", torch.rand(3, H, W, generator=g), K, _camera(seed + 10 * b + t), mask=torch.rand(H, W, generator=g) > 0.4)
                 for t in range(targets)]
        samples.append(Sample(SampleSpec(f"s{b}", "scene", ("src",), tuple(v.id for v in views)), [views[0]], views))
        poses = torch.stack([torch.stack([_camera(100 + seed + 10 * b + t + 3 * d) for d in range(draws)]) for t in range(targets)])
        preds.append(Prediction(torch.rand(targets, draws, 3, H, W, generator=g), poses=poses))
    return samples, preds


def _expected(fn, sample: Sample, pred: Prediction, masked: bool = False) -> float:
    """A sample's value scored alone: the mean of ``fn`` over its (target, draw) pairs, one pair per call."""
    values = [float(fn(pred.image[t, d][None], v.image[None], *([v.mask[None]] if masked else [])))
              for t, v in enumerate(sample.targets) for d in range(pred.image.shape[1])]
    return sum(values) / len(values)


@pytest.mark.parametrize("targets, draws", [(1, 1), (1, 3), (2, 2)])
def test_batched_image_scores_equal_scoring_each_sample_alone(targets, draws):
    samples, preds = _batch(targets, draws, seed=targets * 10 + draws)
    metrics = {"psnr": psnr, "l1": l1, "psnr_masked": psnr_masked}
    scores, failures = score_samples(samples, preds, metrics, MetricOptions())
    assert not failures and len(scores) == 12
    for sc in scores:
        i = int(sc.sample[1:])
        expected = _expected(metrics[sc.metric].fn, samples[i], preds[i], masked=sc.metric == "psnr_masked")
        assert sc.value == pytest.approx(expected, rel=1e-5)


def test_batched_pose_scores_use_the_camera_pairs_of_each_sample():
    samples, preds = _batch(targets=3, draws=2, seed=7)
    scores, failures = score_samples(samples, preds, {"rot_err_deg": rot_err_deg}, MetricOptions())
    assert not failures and [s.sample for s in scores] == ["s0", "s1", "s2", "s3"]
    for sc, sample, pred in zip(scores, samples, preds):
        gt = camera_pairs(torch.stack([v.cam2world for v in sample.targets]))  # 3 pairs (i < j) of 3 cameras
        per_draw = [rot_err_deg.fn(camera_pairs(pred.poses[:, d]), gt) for d in range(2)]
        assert sc.value == pytest.approx(float(torch.cat(per_draw).double().mean()), rel=1e-6)


def test_a_sample_without_the_field_or_with_nan_fails_alone():
    samples, preds = _batch(targets=1, draws=1, seed=3)
    preds[1] = Prediction(preds[1].image, poses=None)  # no poses: fails the pose metric only
    preds[2].image[0, 0, 0, 0, 0] = float("nan")  # psnr of sample 2 is NaN: fails psnr only
    scores, failures = score_samples(samples, preds, {"psnr": psnr, "rot_err_deg": rot_err_deg}, MetricOptions())
    assert failures == [("s2", "psnr", "psnr is not finite: [nan]"), ("s1", "rot_err_deg", "the pipeline predicts no poses")]
    assert {(s.sample, s.metric) for s in scores} == {("s0", "psnr"), ("s1", "psnr"), ("s3", "psnr"),
                                                       ("s0", "rot_err_deg"), ("s2", "rot_err_deg"), ("s3", "rot_err_deg")}


@pytest.mark.parametrize("n", [2, 7, 400, 3001])
@pytest.mark.parametrize("seed", [0, 5])
def test_bootstrap_ci_equals_scipy_to_the_bit(n, seed):
    values = np.random.default_rng(n).normal(20.0, 3.0, n)
    ref = sps.bootstrap((values,), np.mean, confidence_level=0.95, n_resamples=2000, method="percentile",
                        rng=np.random.default_rng(seed)).confidence_interval
    assert bootstrap_ci(values, seed) == (float(ref.low), float(ref.high))


def test_bootstrap_cis_share_draws_yet_equal_scipy_per_array():
    """Arrays of one length share their resample indices; each interval is still scipy's for that array alone,
    whatever the other arrays (other lengths, constant values) in the call."""
    rng = np.random.default_rng(4)
    arrays = [rng.normal(20.0, 3.0, 300), rng.uniform(0, 1, 300), np.full(300, 0.5), rng.normal(0, 1, 41), rng.exponential(1.0, 300)]
    cis = bootstrap_cis(arrays, seed=2)
    for values, ci in zip(arrays, cis):
        if np.ptp(values) == 0:
            assert ci == (0.5, 0.5)
            continue
        ref = sps.bootstrap((values,), np.mean, confidence_level=0.95, n_resamples=2000, method="percentile",
                            rng=np.random.default_rng(2)).confidence_interval
        assert ci == (float(ref.low), float(ref.high))


def test_rotation_defect_of_scaled_rotation_and_reflection():
    r = _camera(1)[:3, :3].double()
    error, det = rotation_defect(1.1 * r)  # (sR)ᵀ(sR) − I = (s² − 1) I; det = s³
    assert error == pytest.approx(0.21, abs=1e-6) and det == pytest.approx(1.331, abs=1e-6)
    assert rotation_defect(r @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)))[1] == pytest.approx(-1.0)
    r[1, 2] = float("nan")
    assert all(math.isnan(x) for x in rotation_defect(r))


def test_check_prediction_keeps_an_in_range_image_and_clamps_rounding():
    sample = _batch(targets=1, draws=1, seed=0)[0][0]
    pred = Prediction(torch.full((1, 1, 3, H, W), 0.25))
    assert check_prediction(pred, sample) is pred  # nothing to clamp: no copy
    pred.image[0, 0, 0, 0, 0] = 1 + 5e-5
    checked = check_prediction(pred, sample)
    assert float(checked.image.max()) == 1.0 and float(pred.image.max()) > 1.0  # clamped copy, the pipeline's tensor untouched


def test_half_precision_predictions_are_scored_in_float32():
    """A bfloat16 image scores as its values in float32 would: mse computed in bfloat16 (its 8-bit mantissa
    rounding the squared differences and their sum) gives another psnr."""
    g = torch.Generator().manual_seed(0)
    target = 0.6 + 0.03 * torch.randn(3, H, W, generator=g)
    sample = Sample(SampleSpec("s", "scene", ("src",), ("t",)), [View("src", target, torch.eye(3), torch.eye(4))],
                    [View("t", target, torch.eye(3), torch.eye(4))])
    image = (target + 0.01 * torch.randn(3, H, W, generator=g))[None, None].to(torch.bfloat16)  # (1, 1, 3, H, W)
    half = check_prediction(Prediction(image, depth=torch.ones(1, 1, H, W, dtype=torch.float16)), sample)
    assert half.image.dtype == torch.float32 and half.depth.dtype == torch.float32
    metrics = {"psnr": psnr}
    scores = [score_samples([sample], [p], metrics, MetricOptions())[0][0].value for p in (half, Prediction(image.float()))]
    assert scores[0] == scores[1]
    assert float(psnr(image[0], target[None].to(torch.bfloat16))) != scores[1]  # bfloat16 arithmetic: 39.5 against 39.509


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_malloc_thresholds_are_accepted_by_glibc():
    assert keep_freed_memory()  # mallopt returns 0 for a parameter or value it refuses


@pytest.mark.parametrize("mode", ["uint8_floor", "uint8_round"])
def test_quantized_predictions_are_scored_as_the_saved_8bit_pngs(mode):
    """pixelNeRF's SRN protocol: ``(rgb * 255).astype(np.uint8)`` saved, read back / 255, then scikit-image's psnr."""
    from skimage.metrics import peak_signal_noise_ratio

    samples, preds = _batch(1, 1, seed=7)
    scores, failures = score_samples(samples, preds, {"psnr": psnr}, MetricOptions(quantize=mode))
    plain, _ = score_samples(samples, preds, {"psnr": psnr}, MetricOptions())
    assert not failures
    for score, float_score, sample, pred in zip(scores, plain, samples, preds):
        image = pred.image[0, 0].permute(1, 2, 0).numpy()  # float32, as pixelNeRF's renders
        saved = (image * 255).astype(np.uint8) if mode == "uint8_floor" else np.round(image * 255).astype(np.uint8)
        ref = peak_signal_noise_ratio(sample.targets[0].image.permute(1, 2, 0).numpy().astype(np.float64), saved / 255.0, data_range=1)
        assert score.value == pytest.approx(ref, abs=1e-5)
        assert score.value != float_score.value


def test_per_draw_and_mean_draw_image_metrics_differ_as_expected():
    """Draws 0.7 and 0.4 of a grey 0.5 target: per draw PSNR 13.98 and 20 (mean 16.99); their mean 0.55 scores 26.02."""
    from bench.metrics.evaluate import with_mean_draw

    target = View("t", torch.full((3, H, W), 0.5), torch.eye(3), torch.eye(4))
    sample = Sample(SampleSpec("s", "scene", ("src",), ("t",)), [target], [target])
    pred = Prediction(torch.stack([torch.full((3, H, W), 0.7), torch.full((3, H, W), 0.4)])[None])  # (1, 2, 3, H, W)
    metrics = with_mean_draw({"psnr": psnr, "l1": l1}, draws=2)
    assert list(metrics) == ["psnr", "l1", "psnr_of_mean_draw", "l1_of_mean_draw"]
    assert with_mean_draw({"psnr": psnr}, draws=1) == {"psnr": psnr}
    scores, failures = score_samples([sample], [pred], metrics, MetricOptions())
    got = {s.metric: s.value for s in scores}
    assert not failures
    assert got["psnr"] == pytest.approx((-10 * math.log10(0.04) + -10 * math.log10(0.01)) / 2, rel=1e-5)
    assert got["psnr_of_mean_draw"] == pytest.approx(-10 * math.log10(0.0025), rel=1e-5)
    assert got["l1"] == pytest.approx(0.15, rel=1e-5) and got["l1_of_mean_draw"] == pytest.approx(0.05, rel=1e-5)
