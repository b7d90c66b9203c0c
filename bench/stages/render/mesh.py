"""Render: coloured triangle meshes into the target cameras (``mesh_rasterizer``)."""

from __future__ import annotations

import torch
from torch import Tensor

from bench.cameras import to_pytorch3d
from bench.stages.base import Stage
from bench.stages.render.points import rendered_views


class MeshRasterizer(Stage):
    """Rasterize each sample's mesh into every target camera with pytorch3d's ``MeshRasterizer``.

    A pixel takes the colour interpolated (barycentric) from the vertices of the nearest face
    covering its centre and that face's depth; pixels no face covers take the suite's background
    colour and depth 0 (no depth). Back faces are kept: a depth mesh's winding says nothing of
    which side was seen. Rasterization is exact (``bin_size=0``, no coarse binning to overflow).

    Provides ``pred_image`` (B, T, 1, 3, H, W) and ``pred_depth`` (B, T, 1, H, W).
    """

    requires = ("mesh_verts", "mesh_colors", "mesh_faces", "mesh_face_valid", "target_K", "target_cam2world", "target_size",
                "background")
    provides = ("pred_image", "pred_depth")

    def forward(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        from pytorch3d.ops import interpolate_face_attributes
        from pytorch3d.renderer import MeshRasterizer as Rasterizer
        from pytorch3d.renderer import RasterizationSettings
        from pytorch3d.structures import Meshes

        b, t = state["target_K"].shape[:2]
        h, w = (int(x) for x in state["target_size"])
        verts, faces, colors = [], [], []
        for i in range(b):
            kept = state["mesh_faces"][i][state["mesh_face_valid"][i]]
            verts += [state["mesh_verts"][i]] * t
            faces += [kept] * t
            colors += [state["mesh_colors"][i]] * t
        meshes = Meshes(verts=verts, faces=faces)
        cameras = to_pytorch3d(state["target_K"].reshape(b * t, 3, 3), state["target_cam2world"].reshape(b * t, 4, 4), (h, w))
        settings = RasterizationSettings(image_size=(h, w), blur_radius=0.0, faces_per_pixel=1, bin_size=0, cull_backfaces=False)
        fragments = Rasterizer(cameras=cameras, raster_settings=settings)(meshes)
        face_colors = torch.cat(colors)[meshes.faces_packed()]  # (F, 3 vertices, 3 channels)
        rgb = interpolate_face_attributes(fragments.pix_to_face, fragments.bary_coords, face_colors)[..., 0, :]  # (BT, H, W, 3)
        return rendered_views(rgb, fragments.zbuf[..., 0], fragments.pix_to_face[..., 0] >= 0, state["background"], b, t)
