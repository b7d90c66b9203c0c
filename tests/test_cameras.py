"""The harness's camera convention against pytorch3d and kornia, and the pytorch3d pin."""

from __future__ import annotations

import math

import pytest
import torch

from bench.cameras import (
    camera_to_world,
    from_pixel_edges,
    from_pytorch3d,
    look_at,
    project,
    relative_pose,
    to_kornia,
    to_pytorch3d,
    unproject_depth,
    world_to_camera,
)


def _cameras(n: int = 3, size: tuple[int, int] = (48, 64)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1) * 2.0
    cam2world = look_at(centres)
    h, w = size
    K = torch.tensor([[60.0, 0, (w - 1) / 2 + 3.0], [0, 55.0, (h - 1) / 2 - 2.0], [0, 0, 1]]).repeat(n, 1, 1)
    return K, cam2world


def test_pytorch3d_compiled_extension_loads_and_renders():
    """A broken torch / easypytorch3d pin must fail here: the C++ rasterizer is used."""
    import pytorch3d._C  # noqa: F401
    from pytorch3d.renderer import PointsRasterizationSettings, PointsRasterizer
    from pytorch3d.structures import Pointclouds

    K, c2w = _cameras(1, (32, 32))
    point = torch.tensor([[[0.1, -0.05, 0.2]]])
    uv, _ = project(point, K, c2w)
    cams = to_pytorch3d(K, c2w, (32, 32))
    settings = PointsRasterizationSettings(image_size=(32, 32), radius=0.4 * 2 / 32, points_per_pixel=1)
    frags = PointsRasterizer(cameras=cams, raster_settings=settings)(Pointclouds(points=[point[0]]))
    hit = (frags.idx[0, ..., 0] >= 0).nonzero().float()  # [[row, column]] of the lit pixel
    assert hit.shape == (1, 2)
    assert torch.allclose(hit[0].flip(0), uv[0, 0], atol=0.5)  # where project() says


def test_pytorch3d_round_trip_and_projection():
    size = (48, 64)
    K, c2w = _cameras(4, size)
    cams = to_pytorch3d(K, c2w, size)
    K2, c2w2 = from_pytorch3d(cams, size)
    torch.testing.assert_close(K2, K, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(c2w2, c2w, atol=1e-5, rtol=1e-5)
    points = torch.randn(4, 10, 3) * 0.3
    uv, z = project(points, K, c2w)
    screen = cams.transform_points_screen(points, image_size=[size] * 4)
    torch.testing.assert_close(screen[..., :2], uv + 0.5, atol=1e-3, rtol=1e-4)  # pytorch3d: centres at j + 0.5
    world_to_view = cams.get_world_to_view_transform().transform_points(points)
    torch.testing.assert_close(world_to_view[..., 2], z, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [(128, 128), (64, 64), (96, 48), (40, 160)])
def test_from_pixel_edges_keeps_the_scene_at_the_same_fraction_of_the_image(size):
    """A Blender camera of a 128 x 128 image (f = 131.25, principal point 64 from the edge, as in SRN's files):
    the optical axis lands on the image centre (W - 1) / 2 at any size, and a point at edge coordinate
    (96, 32), i.e. 3/4 across and 1/4 down, lands at (3/4 W - 0.5, 1/4 H - 0.5)."""
    h, w = size
    K = from_pixel_edges(torch.tensor([[131.25, 0, 64.0], [0, 131.25, 64.0], [0, 0, 1]]), (128, 128), size)
    c2w = look_at(torch.tensor([[0.3, -1.2, 0.4]]))
    in_camera = 1.1 * torch.tensor([[0.0, 0.0, 1.0], [(96 - 64) / 131.25, (32 - 64) / 131.25, 1.0]])  # z = 1.1
    points = in_camera @ c2w[0, :3, :3].T + c2w[0, :3, 3]
    uv, _ = project(points[None], K[None], c2w)
    torch.testing.assert_close(uv[0], torch.tensor([[(w - 1) / 2, (h - 1) / 2], [0.75 * w - 0.5, 0.25 * h - 0.5]]))
    torch.testing.assert_close(K[0, 0] / w, torch.tensor(131.25 / 128))


def test_from_pixel_edges_is_the_half_pixel_shift_then_the_warp_resize():
    """Independent composition: shift to pixel centres at the stored size, then bench.stages.lift.warp's centre-convention resize."""
    from bench.stages.lift.warp import scale_intrinsics

    K = torch.tensor([[[70.0, 0.3, 40.0], [0, 65.0, 30.5], [0, 0, 1]], [[50.0, 0, 33.0], [0, 52.0, 24.0], [0, 0, 1]]])
    shifted = K.clone()
    shifted[:, :2, 2] -= 0.5
    torch.testing.assert_close(from_pixel_edges(K, (60, 80)), shifted)
    torch.testing.assert_close(from_pixel_edges(K, (60, 80), (45, 200)), scale_intrinsics(shifted, (60, 80), (45, 200)))


def test_kornia_projection_agrees():
    size = (48, 64)
    K, c2w = _cameras(2, size)
    points = torch.randn(2, 5, 3) * 0.3
    uv, _ = project(points, K, c2w)
    cam = to_kornia(K, c2w, size)
    torch.testing.assert_close(cam.project(points), uv, atol=1e-4, rtol=1e-5)


def test_look_at_is_opencv():
    """The camera looks at the target along +z, and world up (+z) appears towards image top (-y)."""
    c2w = look_at(torch.tensor([[2.0, 0.0, 0.0]]))[0]
    assert torch.allclose(c2w[:3, 2], torch.tensor([-1.0, 0, 0]))
    assert c2w[2, 1] < 0  # camera y (down) has negative world-z component
    assert torch.allclose(torch.linalg.det(c2w[:3, :3]), torch.tensor(1.0))


def test_unproject_then_project_is_identity():
    K, c2w = _cameras(2, (8, 10))
    depth = torch.rand(2, 8, 10) + 1.0
    pts = unproject_depth(depth, K, c2w)
    uv, z = project(pts, K, c2w)
    v, u = torch.meshgrid(torch.arange(8.0), torch.arange(10.0), indexing="ij")
    torch.testing.assert_close(uv, torch.stack([u, v], -1).reshape(1, 80, 2).expand(2, -1, -1), atol=1e-4, rtol=0)
    torch.testing.assert_close(z, depth.reshape(2, 80), atol=1e-5, rtol=0)


def test_world_to_camera_inverse_and_relative_pose():
    _, c2w = _cameras(2)
    r, t = world_to_camera(c2w)
    torch.testing.assert_close(camera_to_world(r, t), c2w, atol=1e-6, rtol=0)
    rel = relative_pose(c2w[0], c2w[1])
    r_rel = r[1] @ r[0].T
    t_rel = t[1] - r_rel @ t[0]
    torch.testing.assert_close(rel[:3, :3], r_rel, atol=1e-6, rtol=0)
    torch.testing.assert_close(rel[:3, 3], t_rel, atol=1e-6, rtol=0)
    assert math.isclose(float(rel[3, 3]), 1.0)


@pytest.mark.parametrize("h, w", [(32, 32), (24, 40)])
def test_point_rasterizer_stage_reprojects_depth(h, w):
    """Unproject a plane seen by camera A and render it into camera A: the image comes back."""
    from bench.stages.lift.unproject import UnprojectDepth
    from bench.stages.render.points import PointRasterizer

    K, c2w = _cameras(1, (h, w))
    image = torch.rand(1, 1, 3, h, w)
    depth = torch.full((1, 1, h, w), 2.0)
    state = {"source_image": image, "source_depth": depth, "source_K": K[:, None], "source_cam2world": c2w[:, None]}
    state.update(UnprojectDepth()(state))
    state.update({"target_K": K[:, None], "target_cam2world": c2w[:, None], "target_size": torch.tensor([h, w]), "background": torch.ones(3)})
    out = PointRasterizer(radius_px=0.5)(state)
    torch.testing.assert_close(out["pred_image"][0, 0, 0], image[0, 0])
    torch.testing.assert_close(out["pred_depth"][0, 0, 0], depth[0, 0])
