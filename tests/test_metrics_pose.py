"""Pose metrics against scipy rotations and numpy formulas, closed-form cases, pairs and radius bins."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from bench.cameras import camera_to_world
from bench.metrics import pose
from bench.metrics.base import Metric

NAMES = ("rot_err_deg", "trans_err", "trans_angle_deg", "center_err", "acc_15", "acc_30", "auc_30")


def _cam2world(rot: Rotation, t: np.ndarray) -> torch.Tensor:
    """cam2world (N,4,4) float64 from world-to-camera rotations and translations (N,3)."""
    return camera_to_world(torch.from_numpy(rot.as_matrix()), torch.from_numpy(np.asarray(t, dtype=np.float64)))


def _rz(deg: float) -> Rotation:
    """A stack of one rotation by ``deg`` about z."""
    return Rotation.from_rotvec([[0.0, 0.0, deg]], degrees=True)


def test_registration_fields():
    for name in NAMES:
        m = getattr(pose, name)
        assert isinstance(m, Metric) and m.family == "pose"
        assert m.higher_is_better == name.startswith(("acc", "auc"))


def test_against_scipy_and_numpy():
    rng = np.random.default_rng(0)
    rp, rg = Rotation.random(64, random_state=1), Rotation.random(64, random_state=2)
    # near 0° and near 180°, where an arccos of the trace loses precision
    rp = Rotation.concatenate([rp, Rotation.from_rotvec([[1e-5, 0, 0], [0, 0, np.pi - 1e-5]])])
    rg = Rotation.concatenate([rg, Rotation.identity(2)])
    tp, tg = rng.normal(size=(66, 3)), rng.normal(size=(66, 3))
    pred, target = _cam2world(rp, tp), _cam2world(rg, tg)

    np.testing.assert_allclose(pose.rot_err_deg(pred, target).numpy(), np.degrees((rp * rg.inv()).magnitude()), rtol=0, atol=1e-4)
    np.testing.assert_allclose(pose.trans_err(pred, target).numpy(), np.linalg.norm(tp - tg, axis=1), rtol=1e-9)
    cos = np.sum(tp * tg, axis=1) / (np.linalg.norm(tp, axis=1) * np.linalg.norm(tg, axis=1))
    theta = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    np.testing.assert_allclose(pose.trans_angle_deg(pred, target).numpy(), np.minimum(theta, 180 - theta), rtol=0, atol=1e-4)
    centre = lambda r, t: -np.einsum("nji,nj->ni", r.as_matrix(), t)  # noqa: E731 - c = −Rᵀ t
    np.testing.assert_allclose(pose.center_err(pred, target).numpy(), np.linalg.norm(centre(rp, tp) - centre(rg, tg), axis=1), rtol=1e-9)


def test_auc_mean_equals_posediffusion_histogram_auc():
    """Mean over pairs of auc_30 == mean(cumsum(histogram of max error, unit bins on [0, 30]) / n)."""
    rng = np.random.default_rng(3)
    n = 200
    rg = Rotation.random(n, random_state=4)
    rp = Rotation.from_rotvec(rng.normal(size=(n, 3)) * np.radians(rng.uniform(0, 25, (n, 1)))) * rg
    tg = rng.normal(size=(n, 3))
    pred, target = _cam2world(rp, tg + rng.normal(size=(n, 3)) * 0.3), _cam2world(rg, tg)
    error = np.maximum(pose.rot_err_deg(pred, target).numpy(), pose.trans_angle_deg(pred, target).numpy())
    histogram, _ = np.histogram(error, bins=np.arange(31))
    expected = np.mean(np.cumsum(histogram / n))
    assert 0.1 < expected < 0.9
    assert pose.auc_30(pred, target).mean().item() == pytest.approx(expected, abs=1e-12)
    np.testing.assert_array_equal(pose.acc_15(pred, target).numpy(), (error < 15).astype(float))
    np.testing.assert_array_equal(pose.acc_30(pred, target).numpy(), (error < 30).astype(float))


def _rotated_about_z(deg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A camera and the same camera (same centre) turned by ``deg`` about its optical axis."""
    t = np.array([[0.3, -0.2, 2.0]])
    return _cam2world(_rz(deg), _rz(deg).apply(t)), _cam2world(Rotation.identity(1), t)


def test_known_rotation_about_z():
    for deg, acc15, acc30 in ((10.0, 1.0, 1.0), (20.0, 0.0, 1.0), (40.0, 0.0, 0.0)):
        pred, target = _rotated_about_z(deg)
        assert pose.rot_err_deg(pred, target).item() == pytest.approx(deg, abs=1e-9)
        assert pose.trans_angle_deg(pred, target).item() < deg  # the rotation error is the larger one
        assert pose.center_err(pred, target).item() == pytest.approx(0.0, abs=1e-12)
        assert pose.acc_15(pred, target).item() == acc15
        assert pose.acc_30(pred, target).item() == acc30
    # an error of 10 passes t = 11..30. A pose 10° off lands on the t = 10 boundary in floating point
    # (rot_err 9.999999999999998 here), so the pose-level check stays half a degree away from it.
    assert pose.auc_30(*_rotated_about_z(10.5)).item() == pytest.approx(20 / 30)
    assert pose.auc_30(*_rotated_about_z(9.5)).item() == pytest.approx(21 / 30)
    assert pose.auc_30(*_rotated_about_z(40.0)).item() == 0.0
    thresholds = range(1, 31)
    got = pose._fraction_below(torch.tensor([10.0, 0.0, 29.5, 30.0, float("nan")], dtype=torch.float64), thresholds)
    torch.testing.assert_close(got, torch.tensor([20 / 30, 1.0, 1 / 30, 0.0, float("nan")], dtype=torch.float64), equal_nan=True)


def test_identical_poses():
    rot, t = Rotation.random(5, random_state=5), np.random.default_rng(5).normal(size=(5, 3))
    c2w = _cam2world(rot, t).float()
    for name in ("rot_err_deg", "trans_err", "trans_angle_deg", "center_err"):
        torch.testing.assert_close(getattr(pose, name)(c2w, c2w), torch.zeros(5, dtype=torch.float64), atol=1e-5, rtol=0)
    for name in ("acc_15", "acc_30", "auc_30"):
        assert torch.equal(getattr(pose, name)(c2w, c2w), torch.ones(5, dtype=torch.float64)), name


def test_translation_angle_sign_invariance_and_degenerate_translations():
    rot, t = Rotation.random(3, random_state=6), np.random.default_rng(6).normal(size=(3, 3))
    target = _cam2world(rot, t)
    assert torch.allclose(pose.trans_angle_deg(_cam2world(rot, -t), target), torch.zeros(3, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(pose.trans_angle_deg(_cam2world(rot, 5 * t), target), torch.zeros(3, dtype=torch.float64), atol=1e-6)
    torch.testing.assert_close(pose.trans_err(_cam2world(rot, -t), target), torch.from_numpy(2 * np.linalg.norm(t, axis=1)))
    zero = _cam2world(rot, np.zeros((3, 3)))
    assert torch.equal(pose.trans_angle_deg(zero, target), torch.full((3,), 90.0, dtype=torch.float64))  # no direction: worst
    assert torch.isnan(pose.trans_angle_deg(target, zero)).all()  # undefined ground truth: not scorable
    assert torch.isnan(pose.auc_30(target, zero)).all() and torch.isnan(pose.acc_15(target, zero)).all()


def test_ordered_pairs():
    cams = _cam2world(Rotation.concatenate([Rotation.identity(1), _rz(90), _rz(-30)]), np.array([[0, 0, 0], [0, 0, 2.0], [1.0, 0, 0]]))
    pairs = pose.ordered_pairs(cams)
    assert pairs.shape == (6, 4, 4)
    assert pose.ordered_pairs(cams[:1]).shape == (0, 4, 4)
    # camera 0 (identity) seen from camera 1 (x_cam1 = Rz(90) x_world + (0, 0, 2)): its centre, the world
    # origin, is at (0, 0, 2) in camera 1's frame, and its axes are Rz(90) applied to the identity.
    by_hand = torch.eye(4, dtype=torch.float64)
    by_hand[:3, :3] = torch.from_numpy(_rz(90).as_matrix()[0])
    by_hand[:3, 3] = torch.tensor([0.0, 0.0, 2.0])
    torch.testing.assert_close(pairs[0], by_hand)  # pair (0, 1) comes first
    order = [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    for k, (i, j) in enumerate(order):
        torch.testing.assert_close(pairs[k], torch.linalg.inv(cams[j]) @ cams[i])
    # a pair's relative rotation error is the error of the two absolute rotations composed
    noisy = cams.clone()
    noisy[1, :3, :3] = torch.from_numpy(_rz(7).as_matrix()[0]) @ noisy[1, :3, :3]
    assert pose.rot_err_deg(pose.ordered_pairs(noisy), pairs)[0].item() == pytest.approx(7.0)


def test_radius_bin():
    radii = [0.5, 1.0, 1.5, 2.0, 2.99, 3.0, 4.0]
    c2w = torch.eye(4).repeat(len(radii), 1, 1)
    c2w[:, :3, 3] = torch.nn.functional.normalize(torch.randn(len(radii), 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    c2w[:, :3, 3] *= torch.tensor(radii)[:, None]
    c2w[1, :3, 3], c2w[3, :3, 3] = torch.tensor([1.0, 0, 0]), torch.tensor([0, 2.0, 0])  # exactly on edges
    bins = pose.radius_bin(c2w, [1.0, 2.0, 3.0])
    assert bins.dtype == torch.int64
    assert bins.tolist() == [-1, 0, 0, 1, 1, -1, -1]
    with pytest.raises(ValueError):
        pose.radius_bin(c2w, [2.0, 1.0])
    with pytest.raises(ValueError):
        pose.radius_bin(c2w, [1.0])
