"""Volume rendering of a radiance or feature field along the target rays.

The field comes from an earlier stage (a lift such as ``pixel_aligned_field`` or
``frustum_volume``) as the state entry ``field``, a callable following :class:`Field`.
Rays go through the pixel centres of our convention (:mod:`bench.cameras`): pytorch3d's
``NDCMultinomialRaysampler`` on cameras from :func:`bench.cameras.to_pytorch3d`, whose half
pixel shift makes pytorch3d's pixel centres ours. The raysampler's directions are not
normalised: in the camera frame they have z = 1, so a ray length *is* the z-depth of the
point, and a sample spacing ``dz`` along the ray is ``dz * |direction|`` in world units.

Quadrature (Mildenhall et al. 2020, NeRF, eq. 3): a sample of density ``sigma`` over a world
length ``delta`` has opacity ``alpha = 1 - exp(-sigma * delta)``; pytorch3d's
``EmissionAbsorptionRaymarcher`` composites ``w_i = alpha_i * prod_{j<i} (1 - alpha_j)``.

Ray fields (always present, so the losses work at train and eval time alike):

- ``ray_index`` (B, T, R) int64: row-major pixel index ``i * W + j`` of each rendered ray.
  While training with ``n_rays_train > 0`` the R rays are a uniform random subset of each
  target image (drawn from torch's global generator, which ``nvsbench train`` seeds and
  checkpoints); otherwise R = H * W in pixel order.
- ``ray_rgb`` (B, T, R, 3) or ``ray_features`` (B, T, R, C): the rendered values.

Image fields (``pred_image``, ``pred_depth``, ``pred_opacity``, ``rendered_features``) are
provided only when every pixel is rendered (eval mode, or ``n_rays_train`` 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from bench.cameras import to_pytorch3d
from bench.stages.base import Stage


class Field(Protocol):
    """A radiance or feature field in world coordinates, as a lift stage provides it in ``field``."""

    def __call__(self, points: Tensor, directions: Tensor) -> tuple[Tensor, Tensor]:
        """Query the field.

        Args:
            points: (B, T, R, P, 3) world points, P samples along each of R rays of T targets.
            directions: (B, T, R, 3) unit world directions of the rays.

        Returns:
            density: (B, T, R, P, 1) volume density >= 0 per world unit, and
            features: (B, T, R, P, C) emitted colour (C = 3, in [0, 1]) or features.
        """


def pixel_rays(K: Tensor, cam2world: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """World rays through every pixel centre, from pytorch3d's ``NDCMultinomialRaysampler``.

    Args:
        K: (N, 3, 3) intrinsics in pixels; cam2world: (N, 4, 4) OpenCV; size: (H, W).

    Returns:
        origins: (N, H*W, 3) camera centres, and directions: (N, H*W, 3) with camera-frame
        z = 1 (so ``origin + z * direction`` has z-depth z), in row-major pixel order.
    """
    from pytorch3d.renderer import NDCMultinomialRaysampler

    h, w = size
    sampler = NDCMultinomialRaysampler(image_width=w, image_height=h, n_pts_per_ray=0, min_depth=1.0, max_depth=1.0)
    bundle = sampler(to_pytorch3d(K, cam2world, size))
    return bundle.origins.flatten(1, 2), bundle.directions.flatten(1, 2)


@dataclass
class RenderedRays:
    """Rendered rays: ``features`` (B, T, R, C), ``depth`` and ``opacity`` (B, T, R), ``index`` (B, T, R)."""

    features: Tensor
    depth: Tensor
    opacity: Tensor
    index: Tensor
    full: bool  # R = H * W in pixel order


def ray_image(values: Tensor, size: tuple[int, int]) -> Tensor:
    """Values of every pixel's ray (B, T, H*W, ...) in row-major order -> images (B, T, ..., H, W)."""
    return values.unflatten(2, size).movedim((2, 3), (-2, -1))


class VolumeRenderer(Stage):
    """Render the RGB field ``field`` into every target camera, over the suite's background.

    ``n_samples`` points per ray: [near, far] in z-depth is cut into ``n_samples`` equal bins of
    width Δ, sampled at their midpoints (a uniform point within each bin while training: the
    stratified sampling of NeRF, Mildenhall et al. 2020), and each sample stands for its bin:
    ``alpha_i = 1 - exp(-sigma_i Δ |d|)``. The bins tile exactly [near, far] in both modes (a
    constant density gives the analytic opacity); rays as in the module
    docstring. The colour is the field's colour (in [0, 1]; fields end with a sigmoid)
    composited over ``background``: ``sum_i w_i c_i + (1 - opacity) * background``, clamped to
    [0, 1] against the raymarcher's 1e-10 absorption offset.

    Provides ``ray_rgb`` (B, T, R, 3) and ``ray_index`` (B, T, R); when all pixels are
    rendered also ``pred_image`` (B, T, 1, 3, H, W), ``pred_depth`` (B, T, 1, H, W) (expected
    z-depth of the visible surface, ``sum_i w_i z_i / opacity``, 0 where the opacity is 0) and
    ``pred_opacity`` (B, T, 1, H, W). In eval mode rays are rendered ``chunk_rays`` at a time
    (over the whole batch) to bound memory.
    """

    requires = ("field", "target_K", "target_cam2world", "target_size", "near", "far", "background")
    provides = ("pred_image", "pred_depth", "pred_opacity", "ray_rgb", "ray_index")

    def __init__(self, n_samples: int = 32, n_rays_train: int = 256, chunk_rays: int = 2048):
        super().__init__()
        from pytorch3d.renderer import EmissionAbsorptionRaymarcher

        if n_samples < 2:
            raise ValueError(f"n_samples must be at least 2, got {n_samples}")
        self.n_samples, self.n_rays_train, self.chunk_rays = n_samples, n_rays_train, chunk_rays
        self.raymarcher = EmissionAbsorptionRaymarcher()

    def render(self, state: dict[str, Any]) -> RenderedRays:
        """March the rays of every target camera through ``state["field"]``."""
        b, t = state["target_K"].shape[:2]
        size = (int(state["target_size"][0]), int(state["target_size"][1]))
        origins, directions = pixel_rays(state["target_K"].flatten(0, 1), state["target_cam2world"].flatten(0, 1), size)
        n_pixels = size[0] * size[1]
        subset = self.training and 0 < self.n_rays_train < n_pixels
        if subset:
            index = torch.rand(b * t, n_pixels, device=origins.device).argsort(dim=1)[:, : self.n_rays_train]
        else:
            index = torch.arange(n_pixels, device=origins.device).expand(b * t, n_pixels)
        pick = index[..., None].expand(-1, -1, 3)
        origins, directions = (x.gather(1, pick).unflatten(0, (b, t)) for x in (origins, directions))
        index = index.unflatten(0, (b, t))
        step = index.shape[2] if self.training else max(1, self.chunk_rays // (b * t))
        parts = [self._march(state, origins[:, :, i : i + step], directions[:, :, i : i + step]) for i in range(0, index.shape[2], step)]
        out = torch.cat(parts, dim=2)
        opacity = out[..., -1]
        depth = out[..., -2] / opacity.clamp(min=1e-10)
        return RenderedRays(out[..., :-2], depth, opacity, index, not subset)

    def _march(self, state: dict[str, Any], origins: Tensor, directions: Tensor) -> Tensor:
        """(B, T, r, 3) rays -> (B, T, r, C + 2): rendered features, sum_i w_i z_i, opacity."""
        b, t, r = origins.shape[:3]
        near, far = (state[k].view(b, 1, 1, 1) for k in ("near", "far"))
        bins = torch.arange(self.n_samples, device=origins.device, dtype=origins.dtype).expand(b, t, r, -1)
        offset = torch.rand_like(bins) if self.training else torch.full_like(bins, 0.5)  # where in its bin each sample sits
        width = (far - near) / self.n_samples  # Δ, (B, 1, 1, 1)
        z = near + (bins + offset) * width  # (B, T, r, P) z-depth
        points = origins[..., None, :] + z[..., None] * directions[..., None, :]
        norm = directions.norm(dim=-1, keepdim=True)  # world length of a unit of z
        density, features = state["field"](points, directions / norm)
        alpha = 1.0 - torch.exp(-density[..., 0] * width * norm)
        return self.raymarcher(alpha[..., None], torch.cat([features, z[..., None]], dim=-1))

    def forward(self, state: dict[str, Any]) -> dict[str, Tensor]:
        rays = self.render(state)
        rgb = (rays.features + (1.0 - rays.opacity[..., None]) * state["background"]).clamp(0.0, 1.0)
        out = {"ray_rgb": rgb, "ray_index": rays.index}
        if rays.full:
            size = (int(state["target_size"][0]), int(state["target_size"][1]))
            out["pred_image"] = ray_image(rgb, size)[:, :, None]
            out["pred_depth"] = ray_image(rays.depth, size)[:, :, None]
            out["pred_opacity"] = ray_image(rays.opacity, size)[:, :, None]
        return out


class FeatureVolumeRenderer(VolumeRenderer):
    """Render a C-channel feature field (no background) with the rays of :class:`VolumeRenderer`.

    The feature image of GeNVS (Chan et al. 2023, ../shared/seeds/004): features are
    composited as ``sum_i w_i f_i`` (empty space renders as 0). Provides ``ray_features``
    (B, T, R, C) and ``ray_index``; when all pixels are rendered also ``rendered_features``
    (B, T, C, H, W), ``pred_depth`` and ``pred_opacity`` (B, T, 1, H, W).
    """

    requires = ("field", "target_K", "target_cam2world", "target_size", "near", "far")
    provides = ("rendered_features", "pred_depth", "pred_opacity", "ray_features", "ray_index")

    def forward(self, state: dict[str, Any]) -> dict[str, Tensor]:
        rays = self.render(state)
        out = {"ray_features": rays.features, "ray_index": rays.index}
        if rays.full:
            size = (int(state["target_size"][0]), int(state["target_size"][1]))
            out["rendered_features"] = ray_image(rays.features, size)
            out["pred_depth"] = ray_image(rays.depth, size)[:, :, None]
            out["pred_opacity"] = ray_image(rays.opacity, size)[:, :, None]
        return out


class FeatureToRGB(Stage):
    """A 1x1 convolution and a sigmoid from rendered features to colour.

    GeNVS's auxiliary RGB render of the feature image (Chan et al. 2023, ../shared/seeds/004,
    where the first three feature channels serve as RGB; here a learnt linear map).
    Provides ``ray_rgb`` (B, T, R, 3) and, when ``rendered_features`` is present (every pixel
    rendered), ``pred_image`` (B, T, 1, 3, H, W).
    """

    requires = ("ray_features",)
    provides = ("ray_rgb", "pred_image")

    def __init__(self, channels: int = 16):
        super().__init__()
        self.head = nn.Linear(channels, 3)

    def forward(self, state: dict[str, Any]) -> dict[str, Tensor]:
        out = {"ray_rgb": torch.sigmoid(self.head(state["ray_features"]))}
        if "rendered_features" in state:
            out["pred_image"] = torch.sigmoid(self.head(state["rendered_features"].movedim(2, -1))).movedim(-1, 2)[:, :, None]
        return out

