"""Lifts: from source views to 3D (points, features or volumes)."""

from __future__ import annotations

from torch import Tensor

from bench.cameras import unproject_depth
from bench.stages.base import Stage


class UnprojectDepth(Stage):
    """Lift every source pixel with valid depth to a coloured world point.

    Provides ``points`` (B, S*H*W, 3) world coordinates, ``point_colors`` (B, S*H*W, 3)
    and ``point_valid`` (B, S*H*W) bool (depth > 0).
    """

    requires = ("source_image", "source_depth", "source_K", "source_cam2world")
    provides = ("points", "point_colors", "point_valid")

    def forward(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        image, depth = state["source_image"], state["source_depth"]
        b, s, _, h, w = image.shape
        points = unproject_depth(
            depth.reshape(b * s, h, w), state["source_K"].reshape(b * s, 3, 3), state["source_cam2world"].reshape(b * s, 4, 4)
        )
        return {
            "points": points.reshape(b, s * h * w, 3),
            "point_colors": image.permute(0, 1, 3, 4, 2).reshape(b, s * h * w, 3),
            "point_valid": depth.reshape(b, s * h * w) > 0,
        }
