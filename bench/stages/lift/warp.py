"""View transforms of the depth-guided method: the rigid transform of a point-set latent and the
depth-based inverse warp of source images or features into target views.

Conventions are those of :mod:`bench.cameras`: OpenCV ``cam2world``, ``K`` in pixels with pixel
centres at integer coordinates, z-depth. ``grid_sample`` is called with ``align_corners=False``,
under which pixel column ``j`` of a ``W``-wide map sits at normalised ``x = (2 j + 1) / W - 1``
(the map's edges, at ``u = -0.5`` and ``u = W - 0.5``, are at -1 and 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.cameras import project, relative_pose, unproject_depth
from bench.stages.base import Stage


def scale_intrinsics(K: Tensor, size: tuple[int, int], new_size: tuple[int, int]) -> Tensor:
    """Intrinsics of the same camera for an image resized from ``size`` to ``new_size`` (H, W).

    Pixel centres stay at integer coordinates: ``u' = (u + 0.5) * sx - 0.5`` with ``sx = W' / W``,
    so ``fx' = sx fx`` and ``cx' = sx (cx + 0.5) - 0.5`` (likewise for rows).

    Args:
        K: (..., 3, 3) intrinsics in pixels of ``size`` images.

    Returns:
        (..., 3, 3) intrinsics in pixels of ``new_size`` images.
    """
    sy, sx = new_size[0] / size[0], new_size[1] / size[1]
    out = K.clone()
    out[..., 0, :] = K[..., 0, :] * sx
    out[..., 1, :] = K[..., 1, :] * sy
    out[..., 0, 2] += 0.5 * sx - 0.5
    out[..., 1, 2] += 0.5 * sy - 0.5
    return out


def inverse_warp(
    source: Tensor, target_depth: Tensor, source_K: Tensor, source_cam2world: Tensor, target_K: Tensor, target_cam2world: Tensor
) -> tuple[Tensor, Tensor]:
    """Sample a source map at the pixels where the target's depth says each target pixel comes from.

    Every target pixel ``(u, v)`` is lifted to ``X = d(u, v) K_t^-1 [u, v, 1]`` in the target camera,
    moved to the world, projected by the source camera and the source map is sampled there
    bilinearly (Zhou et al. 2017, "Unsupervised Learning of Depth and Ego-Motion from Video";
    ../shared/seeds/001 section 2.1). Occlusions are not modelled: a target pixel hidden in the
    source takes the colour of whatever the source sees there.

    Args:
        source: (N, C, h_s, w_s) source image or features.
        target_depth: (N, h_t, w_t) z-depth of the target view, 0 = invalid.
        source_K: (N, 3, 3) source intrinsics in pixels of the ``h_s x w_s`` map (see :func:`scale_intrinsics`).
        source_cam2world: (N, 4, 4) source pose.
        target_K: (N, 3, 3) target intrinsics in pixels of the ``h_t x w_t`` map.
        target_cam2world: (N, 4, 4) target pose.

    Returns:
        warped: (N, C, h_t, w_t), differentiable in ``source`` and ``target_depth`` (border values
        outside the source), and valid: (N, h_t, w_t) bool, positive depth that lands in front of
        the source camera and between its map's outer pixel centres (where bilinear sampling is exact).
    """
    n, _, hs, ws = source.shape
    ht, wt = target_depth.shape[-2:]
    points = unproject_depth(target_depth, target_K, target_cam2world)
    uv, z = project(points, source_K, source_cam2world)
    grid = torch.stack([(2 * uv[..., 0] + 1) / ws - 1, (2 * uv[..., 1] + 1) / hs - 1], dim=-1).reshape(n, ht, wt, 2)
    warped = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)
    u, v = uv[..., 0].reshape(n, ht, wt), uv[..., 1].reshape(n, ht, wt)
    # between the outer pixel centres: beyond them, up to the map's edge, bilinear sampling only repeats the border
    inside = (u >= 0) & (u <= ws - 1) & (v >= 0) & (v <= hs - 1)
    valid = inside & (z.reshape(n, ht, wt) > 1e-6) & (target_depth > 0)
    return warped, valid


def pair_cameras(state: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Cameras of every (first source, target) pair, flattened to B*T: source ``K`` (B*T, 3, 3),
    source ``cam2world`` (B*T, 4, 4), target ``K`` and target ``cam2world``, from the pipeline state."""
    b, t = state["target_K"].shape[:2]
    return (
        state["source_K"][:, :1].expand(b, t, 3, 3).reshape(b * t, 3, 3),
        state["source_cam2world"][:, :1].expand(b, t, 4, 4).reshape(b * t, 4, 4),
        state["target_K"].reshape(b * t, 3, 3),
        state["target_cam2world"].reshape(b * t, 4, 4),
    )


def warp_to_targets(
    features: list[Tensor], depth_scales: list[Tensor], state: dict[str, Tensor]
) -> list[Tensor]:
    """Warp the first source's multi-scale features into every target by depth maps of the same sizes.

    Args:
        features: list over scales of (B, S, C_k, h_k, w_k) source features.
        depth_scales: list over scales of (B, T, h, w) target z-depth.
        state: the pipeline state, for ``source_image`` (its size), ``source_K``,
            ``source_cam2world``, ``target_K``, ``target_cam2world`` and ``target_size``.

    Returns:
        For each depth scale whose size a feature map has, in the order of ``depth_scales``:
        (B, T, C_k, h, w) that feature map seen from the targets.
    """
    by_size = {tuple(f.shape[-2:]): f[:, 0] for f in features}
    b, t = state["target_K"].shape[:2]
    source_size = tuple(state["source_image"].shape[-2:])
    target_size = tuple(int(x) for x in state["target_size"])
    src_K, src_pose, tgt_K, tgt_pose = pair_cameras(state)
    out = []
    for depth in depth_scales:
        size = tuple(depth.shape[-2:])
        if size not in by_size:
            continue
        feature = by_size[size]
        source = feature[:, None].expand(b, t, *feature.shape[1:]).reshape(b * t, *feature.shape[1:])
        warped, _ = inverse_warp(
            source, depth.reshape(b * t, *size),
            scale_intrinsics(src_K, source_size, size), src_pose, scale_intrinsics(tgt_K, target_size, size), tgt_pose,
        )
        out.append(warped.reshape(b, t, *warped.shape[1:]))
    return out


def transform_latent(latent: Tensor, transform: Tensor) -> Tensor:
    """Apply rigid transforms to point-set latents: ``z_T = R z_S + t`` for every point.

    Args:
        latent: (B, N, 3) points.
        transform: (B, T, 4, 4) rigid transforms.

    Returns:
        (B, T, N, 3) transformed points.
    """
    return latent[:, None] @ transform[..., :3, :3].transpose(-1, -2) + transform[..., None, :3, 3]


class LatentTransform(Stage):
    """The transforming auto-encoder's latent rotation: ``z_T = T_{s->t} · z_S``.

    Hinton et al. 2011 ("Transforming Auto-Encoders"); Chen et al. 2019 ("Monocular Neural
    Image Based Rendering with Continuous View Control") make the latent a set of 3D points so
    that the relative camera motion acts on it as a rigid transform; ../shared/seeds/001 section 2.
    ``T_{s->t}`` takes the first source's camera coordinates to each target's
    (:func:`bench.cameras.relative_pose`).

    Provides ``target_latent`` (B, T, N, 3).
    """

    requires = ("latent", "source_cam2world", "target_cam2world")
    provides = ("target_latent",)

    def forward(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        transform = relative_pose(state["source_cam2world"][:, :1], state["target_cam2world"])
        return {"target_latent": transform_latent(state["latent"][:, 0], transform)}


class InverseWarpFeatures(Stage):
    """Warp the source features into the targets by the predicted target depth (Hou et al. 2021,
    "Novel View Synthesis via Depth-guided Skip Connections"; ../shared/seeds/001: ``z_T^F = inv_warp(z_S^F, d_T)``).

    Each depth scale is paired with the source feature map of the same size (first source);
    scales without one are left out. Provides ``warped_features``: a list of (B, T, C_k, h, w),
    in the order of ``pred_depth_scales``.
    """

    requires = (
        "source_features", "pred_depth_scales", "source_image", "source_K", "source_cam2world",
        "target_K", "target_cam2world", "target_size",
    )
    provides = ("warped_features",)

    def forward(self, state: dict[str, Tensor]) -> dict[str, list[Tensor]]:
        return {"warped_features": warp_to_targets(state["source_features"], state["pred_depth_scales"], state)}
