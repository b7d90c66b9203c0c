"""The one camera convention of nvsbench, and converters at its edges.

Convention (used by every reader, stage and metric inside the harness):

- ``K``: (..., 3, 3) intrinsics in pixels. A pixel's centre has integer coordinates:
  pixel ``[row i, column j]`` is at ``u = j, v = i`` (OpenCV).
- ``cam2world``: (..., 4, 4) camera-to-world transform, OpenCV axes: x right, y down,
  z forward (the camera looks along +z).
- depth: z-depth in world units (distance along the optical axis), 0 means invalid.

Converters to pytorch3d (``PerspectiveCameras``) and kornia (``PinholeCamera``) live here,
and nowhere else; so does :func:`from_pixel_edges`, which every reader of Blender-made intrinsics
(principal point measured from the image edge) uses. pytorch3d puts pixel centres at half-integer screen coordinates (pixel
column j spans [j, j+1)), and ``pytorch3d.utils.cameras_from_opencv_projection`` does not
shift for it, so the converters move the principal point by half a pixel: without that,
everything rendered with pytorch3d lands half a pixel off (measured in
``tests/test_cameras.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def world_to_camera(cam2world: Tensor) -> tuple[Tensor, Tensor]:
    """Split the inverse of ``cam2world`` into rotation and translation.

    Args:
        cam2world: (..., 4, 4) OpenCV camera-to-world transforms.

    Returns:
        R: (..., 3, 3) and t: (..., 3) with ``x_cam = R @ x_world + t``.
    """
    rot = cam2world[..., :3, :3]
    centre = cam2world[..., :3, 3]
    r_w2c = rot.transpose(-1, -2)
    t_w2c = -(r_w2c @ centre.unsqueeze(-1)).squeeze(-1)
    return r_w2c, t_w2c


def camera_to_world(r_w2c: Tensor, t_w2c: Tensor) -> Tensor:
    """Build (..., 4, 4) ``cam2world`` from world-to-camera ``R`` (..., 3, 3), ``t`` (..., 3)."""
    out = torch.zeros(*r_w2c.shape[:-2], 4, 4, dtype=r_w2c.dtype, device=r_w2c.device)
    out[..., :3, :3] = r_w2c.transpose(-1, -2)
    out[..., :3, 3] = -(r_w2c.transpose(-1, -2) @ t_w2c.unsqueeze(-1)).squeeze(-1)
    out[..., 3, 3] = 1.0
    return out


def look_at(centre: Tensor, target: Tensor | None = None, up: Tensor | None = None) -> Tensor:
    """OpenCV ``cam2world`` (N, 4, 4) for cameras at ``centre`` (N, 3) looking at ``target``.

    ``up`` is the world's up direction (default +z); the image's y axis points against it.
    """
    target = torch.zeros_like(centre) if target is None else target.expand_as(centre)
    up = centre.new_tensor([0.0, 0.0, 1.0]) if up is None else up
    z = torch.nn.functional.normalize(target - centre, dim=-1)
    x = torch.nn.functional.normalize(torch.linalg.cross(z, up.expand_as(z)), dim=-1)
    y = torch.linalg.cross(z, x)
    out = torch.eye(4, dtype=centre.dtype, device=centre.device).repeat(centre.shape[0], 1, 1)
    out[:, :3, 0], out[:, :3, 1], out[:, :3, 2], out[:, :3, 3] = x, y, z, centre
    return out


def project(points: Tensor, K: Tensor, cam2world: Tensor) -> tuple[Tensor, Tensor]:
    """Project world points into pixels.

    Args:
        points: (B, N, 3) world points.
        K: (B, 3, 3) intrinsics in pixels.
        cam2world: (B, 4, 4) OpenCV camera-to-world.

    Returns:
        uv: (B, N, 2) pixel coordinates (u = column, v = row), and z: (B, N) depth.
    """
    r, t = world_to_camera(cam2world)
    cam = points @ r.transpose(-1, -2) + t.unsqueeze(-2)
    z = cam[..., 2]
    pix = cam @ K.transpose(-1, -2)
    uv = pix[..., :2] / z.unsqueeze(-1).clamp(min=1e-8)
    return uv, z


def unproject_depth(depth: Tensor, K: Tensor, cam2world: Tensor) -> Tensor:
    """Lift every pixel of a z-depth map to world points.

    Args:
        depth: (B, H, W) z-depth, 0 where invalid.
        K: (B, 3, 3) intrinsics in pixels.
        cam2world: (B, 4, 4) OpenCV camera-to-world.

    Returns:
        (B, H*W, 3) world points in row-major pixel order (invalid pixels land on the
        camera centre; mask them with ``depth > 0``).
    """
    b, h, w = depth.shape
    v, u = torch.meshgrid(
        torch.arange(h, dtype=depth.dtype, device=depth.device),
        torch.arange(w, dtype=depth.dtype, device=depth.device),
        indexing="ij",
    )
    pix = torch.stack([u, v, torch.ones_like(u)], dim=-1).reshape(1, h * w, 3)
    rays = pix @ torch.linalg.inv(K).transpose(-1, -2)  # (B, HW, 3), z = 1
    cam = rays * depth.reshape(b, h * w, 1)
    return cam @ cam2world[:, :3, :3].transpose(-1, -2) + cam2world[:, None, :3, 3]


def to_pytorch3d(K: Tensor, cam2world: Tensor, image_size: tuple[int, int]):
    """pytorch3d ``PerspectiveCameras`` equal to OpenCV cameras ``K`` (B,3,3), ``cam2world`` (B,4,4).

    ``image_size`` is (H, W) in pixels.
    """
    from pytorch3d.utils import cameras_from_opencv_projection

    r, t = world_to_camera(cam2world)
    size = torch.tensor([image_size], dtype=K.dtype, device=K.device).expand(K.shape[0], 2)
    return cameras_from_opencv_projection(R=r, tvec=t, camera_matrix=_shift_principal_point(K, 0.5), image_size=size)


def from_pixel_edges(K: Tensor, size: tuple[int, int], image_size: tuple[int, int] | None = None) -> Tensor:
    """Intrinsics in this module's convention from intrinsics measured from the image's edge.

    Blender's sensor model, and the files written from it, count pixel coordinates from the
    image's top-left corner, so pixel column ``j`` spans ``[j, j + 1)`` and the image centre is
    ``W / 2``: shapenet_renderer's SRN ``intrinsics.txt`` (``u_0 = W / 2`` in
    ``get_calibration_matrix_K_from_blender``, github.com/vsitzmann/shapenet_renderer), DISN's
    ``getBlenderProj`` and nerfstudio's ``cx``/``cy``. Here column ``j``'s centre is at ``u = j``, so
    ``u_here = u_edge - 0.5``. Coordinates from the edge scale with the image, so for an image
    resized from ``size`` to ``image_size``: ``u_here = sx u_edge - 0.5`` with ``sx = W' / W``
    (likewise rows): ``fx' = sx fx``, ``cx' = sx cx - 0.5``.

    Args:
        K: (..., 3, 3) intrinsics in pixels of a ``size`` image, principal point measured from the edge.
        size: (H, W) of the image ``K`` describes.
        image_size: (H, W) of the image the result is for (default ``size``: no resizing).

    Returns:
        (..., 3, 3) intrinsics in pixels of an ``image_size`` image, pixel centres at integers.
    """
    h, w = image_size or size
    sy, sx = h / size[0], w / size[1]
    to_centres = torch.tensor([[sx, 0.0, -0.5], [0.0, sy, -0.5], [0.0, 0.0, 1.0]], dtype=K.dtype, device=K.device)
    return to_centres @ K


def _shift_principal_point(K: Tensor, offset: float) -> Tensor:
    shifted = K.clone()
    shifted[..., :2, 2] += offset
    return shifted


def from_pytorch3d(cameras, image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`to_pytorch3d`: returns ``K`` (B,3,3) and ``cam2world`` (B,4,4)."""
    from pytorch3d.utils import opencv_from_cameras_projection

    n = len(cameras)
    size = torch.tensor([image_size], dtype=torch.float32, device=cameras.device).expand(n, 2)
    r, t, K = opencv_from_cameras_projection(cameras, size)
    return _shift_principal_point(K, -0.5), camera_to_world(r, t)


def to_kornia(K: Tensor, cam2world: Tensor, image_size: tuple[int, int]):
    """kornia ``PinholeCamera`` (world-to-camera extrinsics, 4x4 intrinsics) for the same cameras."""
    from kornia.geometry.camera import PinholeCamera

    b = K.shape[0]
    k4 = torch.eye(4, dtype=K.dtype, device=K.device).repeat(b, 1, 1)
    k4[:, :3, :3] = K
    h, w = image_size
    return PinholeCamera(
        k4,
        torch.linalg.inv(cam2world),
        torch.full((b,), float(h), device=K.device),
        torch.full((b,), float(w), device=K.device),
    )


def relative_pose(src_cam2world: Tensor, dst_cam2world: Tensor) -> Tensor:
    """(..., 4, 4) transform taking source-camera coordinates to target-camera coordinates.

    With world-to-camera (R, t) per camera: R_rel = R_dst R_srcᵀ, t_rel = t_dst − R_rel t_src.
    """
    return torch.linalg.inv(dst_cam2world) @ src_cam2world
