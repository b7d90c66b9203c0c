"""The mesh oracle (depth_mesh + mesh_rasterizer) and the visible-pixel set it is compared on."""

from __future__ import annotations

import math

import pytest
import torch

from bench.cameras import look_at
from bench.metrics.image import psnr_visible
from bench.metrics.visibility import visible_from_sources
from bench.stages.lift.mesh import DepthMesh, grid_faces
from bench.stages.render.mesh import MeshRasterizer

H = W = 16
K = torch.tensor([[20.0, 0.0, (W - 1) / 2], [0.0, 20.0, (H - 1) / 2], [0.0, 0.0, 1.0]])


def camera(centre: list[float]) -> torch.Tensor:
    """(4, 4) OpenCV cam2world at ``centre`` looking at the origin, image y along world y."""
    return look_at(torch.tensor([centre]), up=torch.tensor([0.0, -1.0, 0.0]))[0]


def plane_depth(c2w: torch.Tensor, z_plane: float) -> torch.Tensor:
    """(H, W) z-depth of the world plane z = z_plane seen by camera ``c2w`` (0 where a ray misses it)."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    rays = torch.stack([u, v, torch.ones_like(u)], -1) @ torch.linalg.inv(K.double()).mT  # camera frame, z = 1
    world = rays @ c2w[:3, :3].double().mT
    t = (z_plane - c2w[2, 3].double()) / world[..., 2]  # ray parameter = z-depth, since the camera ray has z = 1
    return torch.where(t > 0, t, 0.0).float()


def state_for(src_c2w, tgt_c2w, depth, image):
    return {"source_image": image[None, None], "source_depth": depth[None, None], "source_K": K[None, None],
            "source_cam2world": src_c2w[None, None], "target_K": K[None, None], "target_cam2world": tgt_c2w[None, None],
            "target_size": torch.tensor([H, W]), "background": torch.ones(3)}


def render(state, ratio=1.5):
    return MeshRasterizer()(state | DepthMesh(ratio)(state))


def test_grid_faces_cover_each_quad_with_two_triangles():
    faces = grid_faces(2, 3)
    assert faces.tolist() == [[0, 3, 1], [1, 4, 2], [1, 3, 4], [2, 4, 5]]


def test_a_mesh_rendered_into_its_own_camera_interpolates_the_source_exactly():
    """Seen from its own camera shifted by a quarter pixel (so pixel centres fall inside triangles, not on their
    edges), a mesh of a plane with colours linear in (u, v) gives those colours at the shifted positions, and the depth."""
    c2w = camera([0.3, -0.2, -2.0])
    depth = torch.full((H, W), 2.0)  # a fronto-parallel plane
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    image = torch.stack([u / W, v / H, 0.5 + 0.0 * u])
    state = state_for(c2w, c2w, depth, image)
    shifted = K.clone()
    shifted[0, 2] -= 0.25  # target pixel (u, v) sees the source's (u + 0.25, v + 0.25)
    shifted[1, 2] -= 0.25
    out = render(state | {"target_K": shifted[None, None]})
    hit = out["pred_depth"][0, 0, 0] > 0
    assert hit[:-1, :-1].all() and not hit[-1].any()  # the last row and column fall outside the mesh
    expected = torch.stack([(u + 0.25) / W, (v + 0.25) / H, 0.5 + 0.0 * u])
    torch.testing.assert_close(out["pred_image"][0, 0, 0][:, hit], expected[:, hit], atol=1e-5, rtol=0)
    torch.testing.assert_close(out["pred_depth"][0, 0, 0][hit], depth[hit], atol=1e-4, rtol=0)
    assert (out["pred_image"][0, 0, 0][:, ~hit] == 1.0).all()  # the background


def test_a_foreshortened_plane_stays_closed_where_point_splats_leave_holes():
    """A plane seen at 60 degrees from the source and head-on from the target: the mesh covers the pixels
    the source sees; the pytorch3d point splat of the same points leaves gaps between them."""
    from bench.stages.lift.unproject import UnprojectDepth
    from bench.stages.render.points import PointRasterizer

    tgt = camera([0.0, 0.0, -1.5])
    angle = math.radians(60)
    src = camera([1.5 * math.sin(angle), 0.0, -1.5 * math.cos(angle)])
    depth = plane_depth(src, 0.0)
    image = torch.full((3, H, W), 0.25)
    state = state_for(src, tgt, depth, image)
    visible = visible_from_sources(plane_depth(tgt, 0.0)[None], K[None], tgt[None], depth[None], K[None], src[None])[0]
    assert visible.sum() > 60
    mesh_hit = render(state)["pred_depth"][0, 0, 0] > 0
    points = PointRasterizer()(state | UnprojectDepth()(state))["pred_depth"][0, 0, 0] > 0
    assert mesh_hit[visible].float().mean() > 0.97 and points[visible].float().mean() < 0.8


def test_the_mesh_is_cut_at_depth_discontinuities():
    c2w = camera([0.0, 0.0, -2.0])
    depth = torch.full((H, W), 2.0)
    depth[:, W // 2 :] = 4.0  # a step: the two halves are not joined
    out = DepthMesh(1.5)(state_for(c2w, c2w, depth, torch.zeros(3, H, W)))
    assert int(out["mesh_face_valid"].sum()) == 2 * (H - 1) * (W - 2)  # every quad but the column across the step
    assert int(DepthMesh(3.0)(state_for(c2w, c2w, depth, torch.zeros(3, H, W)))["mesh_face_valid"].sum()) == 2 * (H - 1) * (W - 1)


def test_visible_pixels_leave_out_what_an_occluder_hides_and_what_no_source_reaches():
    tgt = camera([0.0, 0.0, -2.0])
    target_depth = plane_depth(tgt, 0.0)
    same = visible_from_sources(target_depth[None], K[None], tgt[None], target_depth[None], K[None], tgt[None])[0]
    assert same[:-1, :-1].all()  # a source in the target's place sees all of it (the last row and column lie on no quad)
    occluded = target_depth.clone()
    occluded[4:8, 4:8] = 1.0  # something in front of the plane in the source's view
    hidden = visible_from_sources(target_depth[None], K[None], tgt[None], occluded[None], K[None], tgt[None])[0]
    assert not hidden[4:8, 4:8].any() and hidden[10:-1, 10:-1].all()
    no_depth = visible_from_sources(torch.zeros(1, H, W), K[None], tgt[None], target_depth[None], K[None], tgt[None])
    assert not no_depth.any()


def test_psnr_visible_is_psnr_over_the_visible_pixels():
    pred, target = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1)).unbind(0)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[1:3, 1:3] = True
    mse = (pred - target)[:, mask].pow(2).mean()
    assert psnr_visible(pred[None], target[None], mask[None]).item() == pytest.approx(-10 * math.log10(mse.item()), rel=1e-6)
