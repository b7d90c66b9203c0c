"""Pose metrics against scipy rotations and numpy formulas, closed-form cases, pairs and radius bins."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from bench.cameras import camera_to_world
from bench.metrics import pose
from bench.metrics.base import Metric
from bench.metrics.evaluate import _pose_pairs

NAMES = ("rot_err_deg", "trans_err", "trans_angle_deg", "center_err", "rra_15", "rra_30", "rta_15", "rta_30", "joint_acc_15",
         "joint_acc_30", "auc_30")


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
        assert m.higher_is_better == name.startswith(("rra", "rta", "joint_acc", "auc"))


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
    np.testing.assert_array_equal(pose.joint_acc_15(pred, target).numpy(), (error < 15).astype(float))
    np.testing.assert_array_equal(pose.joint_acc_30(pred, target).numpy(), (error < 30).astype(float))
    rot, angle = pose.rot_err_deg(pred, target).numpy(), pose.trans_angle_deg(pred, target).numpy()
    for k in (15, 30):  # PoseDiffusion's RRA@k / RTA@k test each error alone
        np.testing.assert_array_equal(getattr(pose, f"rra_{k}")(pred, target).numpy(), (rot < k).astype(float))
        np.testing.assert_array_equal(getattr(pose, f"rta_{k}")(pred, target).numpy(), (angle < k).astype(float))
        assert (getattr(pose, f"rra_{k}")(pred, target) >= getattr(pose, f"joint_acc_{k}")(pred, target)).all()
    assert pose.rta_15(pred, target).mean() != pose.joint_acc_15(pred, target).mean()  # the joint accuracy is another number


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
        assert pose.joint_acc_15(pred, target).item() == acc15
        assert pose.joint_acc_30(pred, target).item() == acc30
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
    for name in ("rra_15", "rra_30", "rta_15", "rta_30", "joint_acc_15", "joint_acc_30", "auc_30"):
        assert torch.equal(getattr(pose, name)(c2w, c2w), torch.ones(5, dtype=torch.float64)), name


def test_translation_angle_sign_invariance_and_degenerate_translations():
    rot, t = Rotation.random(3, random_state=6), np.random.default_rng(6).normal(size=(3, 3))
    target = _cam2world(rot, t)
    assert torch.allclose(pose.trans_angle_deg(_cam2world(rot, -t), target), torch.zeros(3, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(pose.trans_angle_deg(_cam2world(rot, 5 * t), target), torch.zeros(3, dtype=torch.float64), atol=1e-6)
    torch.testing.assert_close(pose.trans_err(_cam2world(rot, -t), target), torch.from_numpy(2 * np.linalg.norm(t, axis=1)))
    zero = _cam2world(rot, np.zeros((3, 3)))
    assert torch.equal(pose.trans_angle_deg(zero, target), torch.full((3,), 90.0, dtype=torch.float64))  # no direction: worst
    # a zero ground-truth translation: 90°, in the mean, as PoseDiffusion's compare_translation_by_angle gives
    assert torch.equal(pose.trans_angle_deg(target, zero), torch.full((3,), 90.0, dtype=torch.float64))
    assert torch.equal(pose.rta_30(target, zero), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(pose.auc_30(target, zero), torch.zeros(3, dtype=torch.float64))


def _posediffusion_translation_angle(t_pred: np.ndarray, t_gt: np.ndarray, eps: float = 1e-15) -> np.ndarray:
    """PoseDiffusion's metric.py (compare_translation_by_angle, then min(θ, 180 − θ)), re-written in numpy as the reference."""
    t = t_pred / (np.linalg.norm(t_pred, axis=1, keepdims=True) + eps)
    g = t_gt / (np.linalg.norm(t_gt, axis=1, keepdims=True) + eps)
    loss = np.maximum(1.0 - np.sum(t * g, axis=1) ** 2, eps)
    theta = np.degrees(np.arccos(np.sqrt(1 - loss)))
    return np.minimum(theta, np.abs(180 - theta))


def test_translation_angle_matches_posediffusion_including_zero_translations():
    rng = np.random.default_rng(8)
    rot = Rotation.random(6, random_state=8)
    tp, tg = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    tg[0] = 0.0  # zero ground truth
    tp[1] = 0.0  # zero prediction
    tp[2], tg[2] = 0.0, 0.0  # both
    got = pose.trans_angle_deg(_cam2world(rot, tp), _cam2world(rot, tg)).numpy()
    np.testing.assert_allclose(got, _posediffusion_translation_angle(tp, tg), rtol=0, atol=1e-5)
    assert got[:3].tolist() == [90.0, 90.0, 90.0]


def test_camera_pairs():
    cams = _cam2world(Rotation.concatenate([Rotation.identity(1), _rz(90), _rz(-30)]), np.array([[0, 0, 0], [0, 0, 2.0], [1.0, 0, 0]]))
    pairs = pose.camera_pairs(cams)
    assert pairs.shape == (3, 4, 4)  # 3 cameras: the unordered pairs (0,1), (0,2), (1,2), each once
    assert pose.camera_pairs(cams[:1]).shape == (0, 4, 4)
    assert pose.camera_pairs(cams.repeat(2, 1, 1)[:5]).shape == (10, 4, 4)  # T(T-1)/2
    # camera 0 (identity) seen from camera 1 (x_cam1 = Rz(90) x_world + (0, 0, 2)): its centre, the world
    # origin, is at (0, 0, 2) in camera 1's frame, and its axes are Rz(90) applied to the identity.
    by_hand = torch.eye(4, dtype=torch.float64)
    by_hand[:3, :3] = torch.from_numpy(_rz(90).as_matrix()[0])
    by_hand[:3, 3] = torch.tensor([0.0, 0.0, 2.0])
    torch.testing.assert_close(pairs[0], by_hand)  # pair (0, 1) comes first
    for k, (i, j) in enumerate([(0, 1), (0, 2), (1, 2)]):
        torch.testing.assert_close(pairs[k], torch.linalg.inv(cams[j]) @ cams[i])
    # a pair's relative rotation error is the error of the two absolute rotations composed
    noisy = cams.clone()
    noisy[1, :3, :3] = torch.from_numpy(_rz(7).as_matrix()[0]) @ noisy[1, :3, :3]
    assert pose.rot_err_deg(pose.camera_pairs(noisy), pairs)[0].item() == pytest.approx(7.0)


def test_camera_pairs_translation_angle_is_taken_in_the_direction_i_to_j():
    # World-to-camera poses: camera 0 is the world frame; camera 1 has t = (1, 0, 0), rotation I (ground truth)
    # or Rz(20°) (prediction). Pair (0, 1) compares camera 1's centre in camera 0's frame, −Rᵀt: (−1, 0, 0)
    # against −(cos 20°, −sin 20°, 0), 20° apart. The reverse direction would compare camera 0's centre in
    # camera 1's frame, t = (1, 0, 0) in both: 0°.
    gt = _cam2world(Rotation.identity(2), np.array([[0, 0, 0], [1.0, 0, 0]]))
    pred = _cam2world(Rotation.concatenate([Rotation.identity(1), _rz(20)]), np.array([[0, 0, 0], [1.0, 0, 0]]))
    assert pose.trans_angle_deg(pose.camera_pairs(pred), pose.camera_pairs(gt)).item() == pytest.approx(20.0)
    assert pose.trans_angle_deg(pose.camera_pairs(pred[[1, 0]]), pose.camera_pairs(gt[[1, 0]])).item() == pytest.approx(0.0, abs=1e-9)


def test_camera_pairs_match_a_numpy_reference_of_the_i_less_than_j_protocol():
    # Independent reference, VGGT's form on OpenCV world-to-camera matrices W: for i < j the relative pose is
    # W_i W_j⁻¹ and its translation column is compared (up to sign); the reverse direction W_j W_i⁻¹ differs.
    rng = np.random.default_rng(4)
    rot_gt = Rotation.random(4, random_state=4)
    rot_pred = Rotation.from_rotvec(rng.normal(0, 0.2, (4, 3))) * rot_gt
    t_gt = rng.normal(0, 2, (4, 3))
    t_pred = t_gt + rng.normal(0, 0.7, (4, 3))
    gt, pred = _cam2world(rot_gt, t_gt), _cam2world(rot_pred, t_pred)
    w_gt, w_pred = np.linalg.inv(gt.numpy()), np.linalg.inv(pred.numpy())
    i, j = np.triu_indices(4, k=1)  # (0,1), (0,2), (0,3), (1,2), (1,3), (2,3)

    def angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Sign-invariant angle (degrees) between the translations of W_a W_b⁻¹, prediction against ground truth."""
        tp, tg = ((w[a] @ np.linalg.inv(w[b]))[:, :3, 3] for w in (w_pred, w_gt))
        cos = np.abs((tp * tg).sum(1)) / np.linalg.norm(tp, axis=1) / np.linalg.norm(tg, axis=1)
        return np.degrees(np.arccos(np.clip(cos, 0, 1)))

    got = pose.trans_angle_deg(pose.camera_pairs(pred), pose.camera_pairs(gt)).numpy()
    assert got.shape == (6,)
    np.testing.assert_allclose(got, angle(i, j), atol=1e-6)
    assert np.abs(got - angle(j, i)).max() > 1.0  # the other direction is a different metric


def test_multi_camera_samples_are_scored_on_each_camera_pair_once_per_draw():
    cams = _cam2world(Rotation.random(3, random_state=2), np.random.default_rng(2).normal(0, 1, (3, 3)))
    draws = torch.stack([cams, cams.flip(0)], dim=1)  # (T=3, D=2, 4, 4)
    pred, target, counts = _pose_pairs([draws, draws[:2]], (cams, cams[:2]))
    assert counts == [6, 2]  # 3 pairs x 2 draws, 1 pair x 2 draws
    assert pred.shape == target.shape == (8, 4, 4)
    torch.testing.assert_close(pred[:3], target[:3])  # the first draw is the ground truth
    torch.testing.assert_close(pred[3:6], pose.camera_pairs(cams.flip(0)))
    torch.testing.assert_close(target[3:6], pose.camera_pairs(cams))
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
