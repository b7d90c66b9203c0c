"""Which target pixels a sample's source views see: the pixel set of the visible-pixel image metrics.

A view-synthesis method cannot know what no source shows (the far side of an object, a disoccluded
wall); an upper-bound oracle built from the sources' depth leaves those pixels empty. Scoring
every method on the pixels the sources see makes the oracle's number comparable with theirs
(issue 12). The set is decided from the ground truth alone, the same for every method:

a target pixel with valid depth is *visible* when its 3D point, projected into some source view, lands
in front of that camera inside a square of four neighbouring pixel centres that all have depth, and the
source depth interpolated there (bilinearly) agrees with the point's depth within ``REL_TOL``
(otherwise something nearer hides it from that source). That is the part of the surface the source
samples: between its pixel centres, where an interpolation of the source (a depth mesh, bilinear
warping) is defined. Pixels without target depth (the background of an object dataset) are not in
the set.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bench.cameras import project, unproject_depth

REL_TOL = 0.02  # |z_point − z_source| <= REL_TOL · z_point


def visible_from_sources(target_depth: Tensor, target_K: Tensor, target_cam2world: Tensor, source_depth: Tensor, source_K: Tensor,
                         source_cam2world: Tensor, rel_tol: float = REL_TOL) -> Tensor:
    """(T, H, W) bool: the target pixels some source view sees (see the module docstring).

    Args:
        target_depth: (T, H, W) ground-truth z-depth of the targets, 0 = invalid.
        target_K, target_cam2world: (T, 3, 3), (T, 4, 4).
        source_depth: (S, Hs, Ws) ground-truth z-depth of the sources, 0 = invalid.
        source_K, source_cam2world: (S, 3, 3), (S, 4, 4).
    """
    t, h, w = target_depth.shape
    s, hs, ws = source_depth.shape
    points = unproject_depth(target_depth.double(), target_K.double(), target_cam2world.double()).reshape(1, t * h * w, 3)
    uv, z = project(points.expand(s, -1, -1), source_K.double(), source_cam2world.double())  # (S, THW, 2), (S, THW)
    u0, v0 = uv[..., 0].floor(), uv[..., 1].floor()
    inside = (z > 0) & (u0 >= 0) & (u0 < ws - 1) & (v0 >= 0) & (v0 < hs - 1)
    col, row = u0.long().clamp(0, ws - 2), v0.long().clamp(0, hs - 2)
    fu, fv = uv[..., 0] - u0, uv[..., 1] - v0
    flat = source_depth.double().reshape(s, hs * ws)
    corners = [flat.gather(1, (row + dr) * ws + col + dc) for dr in (0, 1) for dc in (0, 1)]  # (S, THW) each
    weights = [(1 - fv) * (1 - fu), (1 - fv) * fu, fv * (1 - fu), fv * fu]
    seen_depth = sum(wt * c for wt, c in zip(weights, corners))
    all_valid = torch.stack(corners).gt(0).all(0)
    seen = inside & all_valid & ((z - seen_depth).abs() <= rel_tol * z)
    return seen.any(0).reshape(t, h, w) & (target_depth > 0)
