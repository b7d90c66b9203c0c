"""Lift: the source depth maps as triangle meshes, cut where the depth jumps (``depth_mesh``)."""

from __future__ import annotations

import torch
from torch import Tensor

from bench.cameras import unproject_depth
from bench.stages.base import Stage


def grid_faces(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """(2 (H−1)(W−1), 3) int64 triangles of an H x W pixel grid, vertex i = row-major pixel index.

    Each quad of pixels a = (r, c), b = (r, c+1), c = (r+1, c), d = (r+1, c+1) becomes the
    triangles (a, c, b) and (b, c, d).
    """
    idx = torch.arange(h * w, device=device).reshape(h, w)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    return torch.cat([torch.stack([a, c, b], -1).reshape(-1, 3), torch.stack([b, c, d], -1).reshape(-1, 3)])


class DepthMesh(Stage):
    """Triangulate each source view's depth map into a mesh of its pixels' world points.

    Neighbouring pixels form two triangles per 2x2 quad (:func:`grid_faces`); a triangle is kept
    when its three pixels have depth (> 0) and their depths differ by at most ``max_depth_ratio``
    (max / min), so the mesh is cut at depth discontinuities (an object's silhouette, one part in
    front of another) instead of stretching skins across them. Vertex colours are the source
    pixels' colours. Unlike a point splat, a surface seen obliquely from the target stays closed.

    Provides ``mesh_verts`` (B, S*H*W, 3) world points, ``mesh_colors`` (B, S*H*W, 3),
    ``mesh_faces`` (B, F, 3) int64 indices into them (F = S * 2 (H−1)(W−1)) and
    ``mesh_face_valid`` (B, F) bool.
    """

    requires = ("source_image", "source_depth", "source_K", "source_cam2world")
    provides = ("mesh_verts", "mesh_colors", "mesh_faces", "mesh_face_valid")

    def __init__(self, max_depth_ratio: float = 1.5):
        super().__init__()
        if max_depth_ratio < 1:
            raise ValueError(f"max_depth_ratio is a ratio of depths, at least 1; got {max_depth_ratio}")
        self.max_depth_ratio = max_depth_ratio

    def forward(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        image, depth = state["source_image"], state["source_depth"]
        b, s, _, h, w = image.shape
        verts = unproject_depth(depth.reshape(b * s, h, w), state["source_K"].reshape(b * s, 3, 3),
                                state["source_cam2world"].reshape(b * s, 4, 4))
        faces = grid_faces(h, w, image.device)  # (F1, 3) per source view
        z = depth.reshape(b, s, h * w)[:, :, faces]  # (B, S, F1, 3)
        lo, hi = z.min(-1).values, z.max(-1).values
        valid = (lo > 0) & (hi <= lo * self.max_depth_ratio)
        offsets = (torch.arange(s, device=image.device) * h * w).view(s, 1, 1)
        all_faces = (faces[None] + offsets).reshape(1, s * faces.shape[0], 3).expand(b, -1, -1)
        return {
            "mesh_verts": verts.reshape(b, s * h * w, 3),
            "mesh_colors": image.permute(0, 1, 3, 4, 2).reshape(b, s * h * w, 3),
            "mesh_faces": all_faces,
            "mesh_face_valid": valid.reshape(b, s * faces.shape[0]),
        }
