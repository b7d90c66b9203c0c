"""Camera pose metrics: ``fn(pred (N,4,4), target (N,4,4)) -> (N,)`` float64, one value per pair.

Inputs are OpenCV camera-to-world matrices (:mod:`bench.cameras`), absolute or relative
(for a sample with several cameras the harness scores :func:`camera_pairs`). Rotation
and translation errors are taken on the world-to-camera transforms ``x_cam = R x_world + t``
(:func:`bench.cameras.world_to_camera`), the convention of the relative-pose evaluation of
PoseDiffusion (Wang et al. 2023, "PoseDiffusion: Solving Pose Estimation via
Diffusion-aided Bundle Adjustment"). Everything is computed in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from bench.cameras import relative_pose, world_to_camera
from bench.metrics.base import Metric, metric


def _world_to_camera(cam2world: Tensor) -> tuple[Tensor, Tensor]:
    return world_to_camera(cam2world.double())


@metric("pose", higher_is_better=False)
def rot_err_deg(pred: Tensor, target: Tensor) -> Tensor:
    """Geodesic rotation error in degrees: the angle of ``R_pred R_gtᵀ`` (world-to-camera rotations).

    The angle is ``atan2(|vee(M − Mᵀ)| / 2, (tr M − 1) / 2)`` for ``M = R_pred R_gtᵀ``: for
    a rotation matrix this is ``arccos((tr M − 1) / 2)``, the geodesic distance ``|log M|``
    on SO(3) (Huynh 2009, "Metrics for 3D Rotations: Comparison and Analysis"; Hartley et
    al. 2013, "Rotation Averaging"), but it needs no clamp of the cosine into [−1, 1] and keeps full
    precision near 0° and 180°, where arccos is ill-conditioned.
    """
    m = _world_to_camera(pred)[0] @ _world_to_camera(target)[0].transpose(-1, -2)
    cos = (m.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    axis = torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], dim=-1)
    return torch.rad2deg(torch.atan2(axis.norm(dim=-1) / 2.0, cos))


@metric("pose", higher_is_better=False)
def trans_err(pred: Tensor, target: Tensor) -> Tensor:
    """L2 distance ``|t_pred − t_gt|`` between the translations of the world-to-camera transforms."""
    return (_world_to_camera(pred)[1] - _world_to_camera(target)[1]).norm(dim=-1)


@metric("pose", higher_is_better=False, revision=2)  # 2: a zero ground-truth translation scores 90°, not NaN
def trans_angle_deg(pred: Tensor, target: Tensor) -> Tensor:
    """Sign-invariant angle in degrees between the world-to-camera translations: ``min(θ, 180° − θ)``.

    θ is the angle between ``t_pred`` and ``t_gt``; counting θ and 180° − θ as the same
    error follows PoseDiffusion (Wang et al. 2023), which treats t and −t alike (two-view
    estimates, e.g. from an essential matrix, fix a translation only up to a scale of
    either sign). Computed as ``atan2(|t_pred × t_gt|, |t_pred · t_gt|)``, in [0°, 90°].
    A zero translation, predicted or ground truth, has no direction and scores the worst
    error, 90°, as in PoseDiffusion's ``compare_translation_by_angle`` and VGGT's evaluation
    (both normalise with ``t / (|t| + eps)``, so a zero vector gives a zero dot product and
    ``acos(0)`` = 90°): the pair stays in the mean rather than being left out.
    """
    tp, tg = _world_to_camera(pred)[1], _world_to_camera(target)[1]
    angle = torch.rad2deg(torch.atan2(torch.linalg.cross(tp, tg).norm(dim=-1), (tp * tg).sum(-1).abs()))
    return torch.where((tp.norm(dim=-1) == 0) | (tg.norm(dim=-1) == 0), 90.0, angle)


@metric("pose", higher_is_better=False)
def center_err(pred: Tensor, target: Tensor) -> Tensor:
    """L2 distance between camera centres, the translations ``cam2world[:3, 3]`` of pred and target."""
    return (pred.double()[..., :3, 3] - target.double()[..., :3, 3]).norm(dim=-1)


def _pose_error_deg(pred: Tensor, target: Tensor) -> Tensor:
    """``max(rot_err_deg, trans_angle_deg)`` per pair: the error PoseDiffusion thresholds for its AUC."""
    return torch.maximum(rot_err_deg(pred, target), trans_angle_deg(pred, target))


def _fraction_below(error: Tensor, thresholds: Sequence[float]) -> Tensor:
    """Per pair, the fraction of ``thresholds`` that ``error`` (N,) is strictly below -> (N,); NaN stays NaN."""
    below = (error[:, None] < error.new_tensor(thresholds)).double().mean(1)
    return torch.where(error.isnan(), torch.nan, below)


def _accuracy(error: Callable[[Tensor, Tensor], Tensor], k: float, doc: str) -> Metric:
    """The pose metric "1 if ``error(pred, target)`` < ``k`` degrees else 0" per pair, documented by ``doc``."""

    def accuracy(pred: Tensor, target: Tensor) -> Tensor:
        return _fraction_below(error(pred, target), [k])

    accuracy.__doc__ = doc
    return metric("pose", higher_is_better=True)(accuracy)


# PoseDiffusion's (Wang et al. 2023, Tab. 1; its metric.py) relative rotation and translation accuracies:
# the fraction of pairs whose rotation error, resp. sign-invariant translation angle, is below k degrees.
rra_15 = _accuracy(rot_err_deg, 15.0, "RRA@15 (PoseDiffusion): 1 if rot_err_deg < 15 else 0; the mean over pairs is the accuracy.")
rra_30 = _accuracy(rot_err_deg, 30.0, "RRA@30 (PoseDiffusion): 1 if rot_err_deg < 30 else 0; the mean over pairs is the accuracy.")
rta_15 = _accuracy(trans_angle_deg, 15.0, "RTA@15 (PoseDiffusion): 1 if trans_angle_deg < 15 else 0; the mean over pairs is the accuracy.")
rta_30 = _accuracy(trans_angle_deg, 30.0, "RTA@30 (PoseDiffusion): 1 if trans_angle_deg < 30 else 0; the mean over pairs is the accuracy.")
# Both tests at once: max(rot_err_deg, trans_angle_deg) < k, the error behind PoseDiffusion's AUC. Not RRA.
joint_acc_15 = _accuracy(_pose_error_deg, 15.0, "Joint pose accuracy at 15°: 1 if max(rot_err_deg, trans_angle_deg) < 15: RRA@15 and RTA@15 pass.")
joint_acc_30 = _accuracy(_pose_error_deg, 30.0, "Joint pose accuracy at 30°: 1 if max(rot_err_deg, trans_angle_deg) < 30: RRA@30 and RTA@30 pass.")


@metric("pose", higher_is_better=True, revision=2)  # 2: through trans_angle_deg
def auc_30(pred: Tensor, target: Tensor) -> Tensor:
    """Per-pair share of PoseDiffusion's AUC@30: the fraction of t = 1, 2, ..., 30 with ``e < t``.

    ``e = max(rot_err_deg, trans_angle_deg)``. PoseDiffusion (Wang et al. 2023) computes
    AUC@30 over a set of pairs from a histogram of e with unit bins on [0, 30]: the mean
    over t = 1..30 of the cumulative fraction of pairs with e < t. Exchanging the two
    means, that is the mean over pairs of this per-pair value, so averaging ``auc_30``
    over pairs gives the same number (except for e exactly 30, which the last, closed
    histogram bin counts and this strict comparison does not).
    """
    return _fraction_below(_pose_error_deg(pred, target), range(1, 31))


def camera_pairs(cam2world: Tensor) -> Tensor:
    """Relative transforms of the unordered camera pairs of one sample, each once: (T,4,4) -> (T(T−1)/2,4,4).

    Pairs are i < j in ``torch.combinations`` order, (0,1), (0,2), ..., (1,2), ...: the pair
    set of PoseDiffusion's relative-pose evaluation (Wang et al. 2023), where each unordered
    pair is scored once. Pair (i, j) is ``relative_pose(cam2world[i], cam2world[j])``, camera i
    as a cam2world matrix in the frame of camera j, so the translation the metrics compare
    (:func:`bench.cameras.world_to_camera` of it) is camera j's centre in camera i's frame.
    That is the direction of VGGT's evaluation (Wang et al. 2025, ``se3_to_relative_pose_error``,
    relative pose ``w2c_i · w2c_j⁻¹``); PoseDiffusion's code compares the other direction (camera
    i's centre in camera j's frame). Rotation errors are the same both ways, but
    :data:`trans_angle_deg`, and the accuracies and AUC built on it, are not.
    """
    ij = torch.combinations(torch.arange(cam2world.shape[0], device=cam2world.device), r=2)  # (P, 2), i < j
    return relative_pose(cam2world[ij[:, 0]], cam2world[ij[:, 1]])


def radius_bin(cam2world: Tensor, edges: list[float]) -> Tensor:
    """Bin of each camera centre's distance r from the world origin: (N,4,4) -> (N,) int64.

    Bin k holds ``edges[k] <= r < edges[k + 1]``; r outside [edges[0], edges[-1]) gets −1.
    ``edges`` must be strictly increasing, at least two of them.
    """
    r = cam2world.double()[..., :3, 3].norm(dim=-1)
    e = r.new_tensor(edges)
    if e.ndim != 1 or e.numel() < 2 or not bool((e[1:] > e[:-1]).all()):
        raise ValueError(f"radius bin edges must be at least two strictly increasing numbers, got {edges}")
    k = torch.bucketize(r, e, right=True) - 1
    return torch.where((k >= 0) & (k < e.numel() - 1), k, -1)
