"""Depth head of the depth-guided method (../shared/seeds/001): multi-scale target depth, with or without skips."""

from __future__ import annotations

from functools import partial

from torch import Tensor

from bench.nets.decoder import UpsamplingDecoder
from bench.stages.base import Stage
from bench.stages.lift.warp import warp_to_targets


class DepthDecoder(Stage):
    """The skip-guided depth decoder of ../shared/seeds/001 (section 2, 2.2).

    An :class:`UpsamplingDecoder` with one output channel, mapped to z-depth in the suite's
    bounds: ``d = near + (far - near) * sigmoid(x)``. The first pass decodes the transformed
    latent alone, ``d^unskip = DepDec_unskip(z_T)``; with ``skip`` the source features are then
    warped into the target by those depths, ``z_T^F = inv_warp(z_S^F, d^unskip)``, and the same
    decoder (shared weights, plus its fusion blocks) decodes again,
    ``d^skip = DepDec_skip(z_T, z_T^F)``. Without ``skip`` it is the plain depth decoder of
    Hou et al. 2021 and both outputs are the first pass.

    Provides ``depth_unskip_scales`` and ``pred_depth_scales`` (lists over levels, coarsest
    first, of (B, T, h_k, w_k) z-depth), ``pred_depth`` (B, T, 1, H, W) (the finest skip
    depth) and ``decode_depth``: the skip pass as a function of a target-view latent
    (B, T, N, 3) and target-view features (list of (B, T, C_k, h_k, w_k)), for the seed's L_skip.
    """

    requires = (
        "target_latent", "source_features", "source_image", "source_K", "source_cam2world",
        "target_K", "target_cam2world", "target_size", "near", "far",
    )
    provides = ("depth_unskip_scales", "pred_depth_scales", "pred_depth", "decode_depth")

    def __init__(self, points: int = 64, channels: tuple[int, ...] = (32, 32, 32, 16, 16),
                 skip_channels: tuple[int, ...] = (64, 32, 16, 0), grid: int = 4, skip: bool = True):
        super().__init__()
        self.skip = skip
        skips = skip_channels if skip else (0,) * len(skip_channels)
        self.decoder = UpsamplingDecoder(points * 3, channels, skips, 1, grid)

    def decode(self, latent: Tensor, features: list[Tensor] | None, near: Tensor, far: Tensor, size: tuple[int, int]) -> list[Tensor]:
        """Depth maps of target views.

        Args:
            latent: (B, T, N, 3) target-view latents.
            features: list of (B, T, C_k, h_k, w_k) target-view features, or None (unskip pass).
            near, far: (B,) depth bounds.
            size: (H, W) of the finest map.

        Returns:
            List over levels, coarsest first, of (B, T, h_k, w_k) z-depth in (near, far).
        """
        b, t = latent.shape[:2]
        skips = None if features is None else [f.flatten(0, 1) for f in features]
        raw = self.decoder(latent.flatten(0, 1).flatten(1), size, skips)
        near, far = near[:, None, None, None], far[:, None, None, None]
        return [near + (far - near) * r.sigmoid().reshape(b, t, *r.shape[-2:]) for r in raw]

    def forward(self, state: dict[str, Tensor]) -> dict:
        size = tuple(int(x) for x in state["target_size"])
        latent, near, far = state["target_latent"], state["near"], state["far"]
        unskip = self.decode(latent, None, near, far, size)
        final = self.decode(latent, warp_to_targets(state["source_features"], unskip, state), near, far, size) if self.skip else unskip
        return {
            "depth_unskip_scales": unskip,
            "pred_depth_scales": final,
            "pred_depth": final[-1][:, :, None],
            "decode_depth": partial(self.decode, near=near, far=far, size=size),
        }
