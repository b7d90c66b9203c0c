"""Lifts to neural fields: source features -> a ``field`` callable for :mod:`bench.stages.render.volume`.

Both stages read ``source_features`` (the :class:`bench.stages.encode.resnet.ResNetEncoder` list
over scales of (B, S, C_k, h_k, w_k)) and provide ``field``, a callable
``field(points (B,T,R,P,3), directions (B,T,R,3)) -> (density (...,1), features (...,C))``
(see :class:`bench.stages.render.volume.Field`) bound to the batch's source features and cameras.

Feature maps are sampled where a world point projects (:func:`bench.cameras.project`) with
``grid_sample(align_corners=False)``: a feature map of size (h, w) covers the source image
(H, W), so its cell ``(a, b)`` has its centre at image pixel ``u = (b + 0.5) W / w - 0.5``,
``v = (a + 0.5) H / h - 0.5`` (our pixel centres are integers), and a point projecting
there samples exactly that cell.

Density is ``softplus(x - 1)`` of the network output (the shifted softplus of mip-NeRF,
Barron et al. 2021), colour a sigmoid.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.cameras import project, world_to_camera
from bench.stages.base import Stage


def pixel_grid(uv: Tensor, size: tuple[int, int]) -> Tensor:
    """Pixel coordinates (..., 2) (u = column, v = row) of an (H, W) image -> ``grid_sample`` coordinates in [-1, 1]."""
    h, w = size
    return torch.stack([(uv[..., 0] + 0.5) / w * 2 - 1, (uv[..., 1] + 0.5) / h * 2 - 1], dim=-1)


def project_to_sources(points: Tensor, K: Tensor, cam2world: Tensor) -> tuple[Tensor, Tensor]:
    """Project world points (B, N, 3) into S source cameras K (B, S, 3, 3), cam2world (B, S, 4, 4).

    Returns uv (B*S, N, 2) pixels and z (B*S, N) z-depth (<= 0 behind the camera).
    """
    s = K.shape[1]
    return project(points.repeat_interleave(s, dim=0), K.flatten(0, 1), cam2world.flatten(0, 1))


def sample_pixel_features(features: list[Tensor], uv: Tensor, z: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly sample every scale of ``features`` at pixels ``uv`` and concatenate.

    Args:
        features: list over scales of (N, C_k, h_k, w_k) maps covering an (H, W) = ``size`` image.
        uv: (N, M, 2) pixel coordinates in that image; z: (N, M) z-depth of the points.

    Returns:
        (N, M, sum_k C_k); zero outside the image and for points behind the camera (z <= 0).
    """
    grid = pixel_grid(uv, size)[:, None]  # (N, 1, M, 2)
    sampled = [F.grid_sample(f, grid, align_corners=False, padding_mode="zeros")[:, :, 0] for f in features]
    return torch.cat(sampled, dim=1).transpose(1, 2) * (z > 0)[..., None]


def sample_frustum(volume: Tensor, uv: Tensor, z: Tensor, near: Tensor, far: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Trilinearly sample a frustum-aligned feature volume at projected points.

    Args:
        volume: (N, C, D, h, w): D depth planes evenly spaced in z-depth, plane k at
            ``near + (k + 0.5) (far - near) / D``; cells aligned with the (H, W) = ``size`` image.
        uv: (N, M, 2) pixel coordinates; z: (N, M) z-depth; near, far: (N,).

    Returns:
        features (N, M, C), zero outside the frustum, and inside (N, M) bool.
    """
    depth = (z - near[:, None]) / (far - near)[:, None] * 2 - 1
    grid = torch.cat([pixel_grid(uv, size), depth[..., None]], dim=-1)  # (N, M, 3) as (x, y, depth)
    inside = (grid.abs() <= 1).all(dim=-1) & (z > 0)
    sampled = F.grid_sample(volume, grid[:, None, None], align_corners=False, padding_mode="zeros")[:, :, 0, 0]
    return sampled.transpose(1, 2) * inside[..., None], inside


class ResBlockFC(nn.Module):
    """Fully connected residual block ``x + W1 relu(W0 relu(x))``, ``W1`` initialised at zero (pixelNeRF's ResnetFC block)."""

    def __init__(self, width: int):
        super().__init__()
        self.fc0, self.fc1 = nn.Linear(width, width), nn.Linear(width, width)
        nn.init.zeros_(self.fc1.weight)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc1(self.fc0(x.relu()).relu())


class PixelAlignedField(Stage):
    """pixelNeRF's image-conditioned radiance field (Yu et al. 2021, "pixelNeRF: Neural Radiance Fields from One or Few Images").

    A world point x is expressed in each source camera's frame, x_s, and projected into it;
    the source features are sampled there (:func:`sample_pixel_features`, every encoder scale,
    i.e. pixelNeRF's upsample-and-concatenate read at one point). A ResNet-style MLP takes
    ``[harmonic embedding of x_s (n_harmonics octaves, Mildenhall et al. 2020), view direction
    in the source frame]``, adds a linear map of the features before each of its first
    ``pool_after`` blocks, mean-pools over the sources, runs the remaining blocks and outputs
    density and RGB. Scaled down from pixelNeRF's 5 blocks of width 512 for CPU training.

    ``feature_channels`` must equal the encoder's total channels (224 for ``resnet_encoder``'s
    default (32, 64, 128)). Provides ``field`` (C = 3 colour channels in [0, 1]).
    """

    requires = ("source_features", "source_image", "source_K", "source_cam2world")
    provides = ("field",)

    def __init__(self, feature_channels: int = 224, width: int = 64, n_blocks: int = 3, pool_after: int = 2, n_harmonics: int = 6):
        super().__init__()
        from pytorch3d.renderer import HarmonicEmbedding

        if not 0 <= pool_after <= n_blocks:
            raise ValueError(f"pool_after must be in [0, n_blocks={n_blocks}], got {pool_after}")
        self.feature_channels, self.pool_after = feature_channels, pool_after
        self.embed = HarmonicEmbedding(n_harmonics)
        self.lin_in = nn.Linear(self.embed.get_output_dim(3) + 3, width)
        self.lin_z = nn.ModuleList(nn.Linear(feature_channels, width) for _ in range(pool_after))
        self.blocks = nn.ModuleList(ResBlockFC(width) for _ in range(n_blocks))
        self.lin_out = nn.Linear(width, 4)

    def forward(self, state: dict) -> dict:
        features = state["source_features"]
        channels = sum(f.shape[2] for f in features)
        if channels != self.feature_channels:
            raise ValueError(f"source_features have {channels} channels, pixel_aligned_field expects feature_channels={self.feature_channels}")
        return {"field": partial(
            self.query, features=[f.flatten(0, 1) for f in features], K=state["source_K"],
            cam2world=state["source_cam2world"], size=tuple(state["source_image"].shape[-2:]),
        )}

    def query(self, points: Tensor, directions: Tensor, *, features: list[Tensor], K: Tensor, cam2world: Tensor,
              size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """The :class:`bench.stages.render.volume.Field` call; ``features`` are per scale (B*S, C_k, h_k, w_k)."""
        b, s = K.shape[:2]
        n_samples = points.shape[-2]
        flat = points.reshape(b, -1, 3)  # (B, N, 3), N = T * R * P
        uv, z = project_to_sources(flat, K, cam2world)
        z_feat = sample_pixel_features(features, uv, z, size).unflatten(0, (b, s))  # (B, S, N, C)
        r_w2c, t_w2c = world_to_camera(cam2world)  # (B, S, 3, 3), (B, S, 3)
        x_src = flat[:, None] @ r_w2c.transpose(-1, -2) + t_w2c[:, :, None]  # (B, S, N, 3)
        d_src = directions.reshape(b, 1, -1, 1, 3) @ r_w2c.transpose(-1, -2)[:, :, None]  # (B, S, T*R, 1, 3)
        d_src = d_src.expand(-1, -1, -1, n_samples, -1).reshape(b, s, -1, 3)
        h = self.lin_in(torch.cat([self.embed(x_src), d_src], dim=-1))
        for k, block in enumerate(self.blocks):
            if k == self.pool_after:
                h = h.mean(dim=1)
            if k < self.pool_after:
                h = h + self.lin_z[k](z_feat)
            h = block(h)
        if self.pool_after == len(self.blocks):
            h = h.mean(dim=1)
        out = self.lin_out(h.relu()).reshape(*points.shape[:-1], 4)
        return F.softplus(out[..., :1] - 1.0), torch.sigmoid(out[..., 1:])


class FrustumVolume(Stage):
    """GeNVS's frustum-aligned feature volume (Chan et al. 2023, ../shared/seeds/004).

    The encoder's scales are upsampled to a (H / stride, W / stride) grid and concatenated; a
    3x3 convolution, ReLU and a 1x1 convolution predict ``depth_planes * channels`` features
    per cell, reshaped to a (channels, depth_planes, H / stride, W / stride) volume aligned
    with the source camera's frustum between the sample's ``near`` and ``far`` (planes evenly
    spaced in z-depth; GeNVS: 64x64x32x16 from 128 px images, here ``stride`` 1 gives 64x64
    at 64 px). A world point samples each source's volume trilinearly at its projection
    (:func:`sample_frustum`); the sources that see it are mean-pooled, and two small MLPs map
    the result to density and ``out_channels`` features. Points outside every source frustum
    are empty (density 0). GeNVS's DeepLabV3+ encoder is replaced by
    ``resnet_encoder``; ``feature_channels`` must equal its total channels.

    Provides ``field`` (C = ``out_channels`` features).
    """

    requires = ("source_features", "source_image", "source_K", "source_cam2world", "near", "far")
    provides = ("field",)

    def __init__(self, feature_channels: int = 224, stride: int = 1, depth_planes: int = 32, channels: int = 16,
                 width: int = 64, out_channels: int = 16):
        super().__init__()
        self.feature_channels, self.stride, self.depth_planes, self.channels = feature_channels, stride, depth_planes, channels
        self.to_volume = nn.Sequential(
            nn.Conv2d(feature_channels, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, depth_planes * channels, 1)
        )
        self.density = nn.Sequential(nn.Linear(channels, width), nn.ReLU(inplace=True), nn.Linear(width, 1))
        self.features = nn.Sequential(nn.Linear(channels, width), nn.ReLU(inplace=True), nn.Linear(width, out_channels))

    def forward(self, state: dict) -> dict:
        features = state["source_features"]
        channels = sum(f.shape[2] for f in features)
        if channels != self.feature_channels:
            raise ValueError(f"source_features have {channels} channels, frustum_volume expects feature_channels={self.feature_channels}")
        b, s, _, h, w = state["source_image"].shape
        grid = (h // self.stride, w // self.stride)
        x = torch.cat([F.interpolate(f.flatten(0, 1), size=grid, mode="bilinear", align_corners=False) for f in features], dim=1)
        volume = self.to_volume(x).unflatten(1, (self.channels, self.depth_planes))  # (B*S, C, D, h', w')
        return {"field": partial(
            self.query, volume=volume, K=state["source_K"], cam2world=state["source_cam2world"],
            near=state["near"].repeat_interleave(s), far=state["far"].repeat_interleave(s), size=(h, w),
        )}

    def query(self, points: Tensor, directions: Tensor, *, volume: Tensor, K: Tensor, cam2world: Tensor, near: Tensor,
              far: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """The :class:`bench.stages.render.volume.Field` call (``directions`` unused: GeNVS's field is view-independent)."""
        b, s = K.shape[:2]
        uv, z = project_to_sources(points.reshape(b, -1, 3), K, cam2world)
        sampled, inside = sample_frustum(volume, uv, z, near, far, size)
        sampled, inside = sampled.unflatten(0, (b, s)), inside.unflatten(0, (b, s))  # (B, S, N, C), (B, S, N)
        count = inside.sum(dim=1)
        pooled = sampled.sum(dim=1) / count.clamp(min=1)[..., None]  # mean over the sources that see the point
        density = F.softplus(self.density(pooled) - 1.0) * (count > 0)[..., None]
        return density.reshape(*points.shape[:-1], 1), self.features(pooled).reshape(*points.shape[:-1], -1)
