"""Renderers: from a 3D representation to target images."""

from __future__ import annotations

import torch
from torch import Tensor

from bench.cameras import to_pytorch3d
from bench.stages.base import Stage


def rendered_views(rgb: Tensor, zbuf: Tensor, hit: Tensor, background: Tensor, b: int, t: int) -> dict[str, Tensor]:
    """``pred_image`` (B, T, 1, 3, H, W) and ``pred_depth`` (B, T, 1, H, W) from a rasterizer's (BT, H, W, 3) colours,
    (BT, H, W) z-buffer and hit mask: the background colour and depth 0 where nothing was hit."""
    h, w = hit.shape[-2:]
    rgb = torch.where(hit[..., None], rgb, background.to(rgb))
    depth = torch.where(hit, zbuf, torch.zeros_like(zbuf))
    return {"pred_image": rgb.permute(0, 3, 1, 2).reshape(b, t, 1, 3, h, w), "pred_depth": depth.reshape(b, t, 1, h, w)}


class PointRasterizer(Stage):
    """Render coloured points into every target camera with pytorch3d's point rasterizer.

    Each pixel takes the colour of its nearest point (a z-buffer splat of radius
    ``radius_px`` pixels); pixels no point covers take the suite's background colour.

    Provides ``pred_image`` (B, T, 1, 3, H, W) and ``pred_depth`` (B, T, 1, H, W) z-depth,
    0 where empty.
    """

    requires = ("points", "point_colors", "point_valid", "target_K", "target_cam2world", "target_size", "background")
    provides = ("pred_image", "pred_depth")

    def __init__(self, radius_px: float = 0.75):
        super().__init__()
        self.radius_px = radius_px

    def forward(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        from pytorch3d.renderer import PointsRasterizationSettings, PointsRasterizer
        from pytorch3d.structures import Pointclouds

        b, t = state["target_K"].shape[:2]
        h, w = (int(x) for x in state["target_size"])
        points, colors = [], []
        for i in range(b):
            valid = state["point_valid"][i]
            points += [state["points"][i][valid]] * t
            colors += [state["point_colors"][i][valid]] * t
        clouds = Pointclouds(points=points, features=colors)
        cameras = to_pytorch3d(state["target_K"].reshape(b * t, 3, 3), state["target_cam2world"].reshape(b * t, 4, 4), (h, w))
        settings = PointsRasterizationSettings(image_size=(h, w), radius=self.radius_px * 2.0 / min(h, w), points_per_pixel=1)
        fragments = PointsRasterizer(cameras=cameras, raster_settings=settings)(clouds)
        idx = fragments.idx[..., 0]  # (BT, H, W) index into the packed points, -1 where empty
        rgb = clouds.features_packed()[idx.clamp(min=0)]  # (BT, H, W, 3)
        return rendered_views(rgb, fragments.zbuf[..., 0], idx >= 0, state["background"], b, t)
