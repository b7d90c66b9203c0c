"""Decoders of the depth-guided method: from a (transformed) latent and skip features to
multi-scale depth maps or images of the target views."""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.stages.base import Stage
from bench.stages.warp import warp_to_targets


def level_sizes(size: tuple[int, int], levels: int) -> list[tuple[int, int]]:
    """Map sizes of a decoder with ``levels`` upsampling stages ending at ``size`` (H, W).

    Entry 0 is the grid the latent is mapped to, entry k has ``ceil(H / 2**(levels-k))`` rows
    (the sizes of a stride-2 encoder's maps, so skip features line up), the last is ``size``.
    """
    h, w = size
    return [(math.ceil(h / 2**e), math.ceil(w / 2**e)) for e in range(levels, -1, -1)]


class ConvBlock(nn.Sequential):
    """3x3 convolution with reflection padding and LeakyReLU (../shared/seeds/001 section 2.2,
    after Godard et al. 2019 for the padding and Hou et al. 2021 for the activation)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="reflect"), nn.LeakyReLU(0.2, inplace=True))


class UpsamplingDecoder(nn.Module):
    """A latent vector to multi-scale maps, optionally fed skip features (a U-Net decoder, Ronneberger et al. 2015).

    A fully connected layer maps the latent to ``channels[0]`` maps on a ``grid x grid`` grid
    (resized to the first level size of :func:`level_sizes` when the image size asks for another
    one); then each level k = 1 .. L (L = ``len(channels) - 1``) upsamples by 2 (nearest),
    applies a :class:`ConvBlock` to ``channels[k]`` channels, and, when ``skip_channels[k-1] > 0``
    and skip features are given, adds ``ConvBlock(concat(x, skip))`` with the skip map of that
    level's size (the seed's "additional convolutional blocks" that let the depth decoder run
    with or without skips). A 3x3 head gives the level's output.

    Args:
        latent_dim: size of the latent vector.
        channels: channels at the grid, then at each level, coarsest first.
        skip_channels: channels of the skip map fused at each level (L entries, coarsest first), 0 = none.
        out_channels: channels of every output.
        grid: side of the grid the latent is mapped to.
    """

    def __init__(self, latent_dim: int, channels: tuple[int, ...], skip_channels: tuple[int, ...], out_channels: int, grid: int):
        super().__init__()
        if len(skip_channels) != len(channels) - 1:
            raise ValueError(f"skip_channels needs one entry per level ({len(channels) - 1}), got {len(skip_channels)}")
        self.latent_dim, self.grid, self.skip_channels = latent_dim, grid, tuple(skip_channels)
        self.fc = nn.Linear(latent_dim, channels[0] * grid * grid)
        self.blocks = nn.ModuleList(ConvBlock(a, b) for a, b in zip(channels[:-1], channels[1:]))
        self.fuse = nn.ModuleDict(
            {str(k): ConvBlock(c + s, c) for k, (c, s) in enumerate(zip(channels[1:], skip_channels)) if s > 0}
        )
        self.heads = nn.ModuleList(nn.Conv2d(c, out_channels, 3, padding=1, padding_mode="reflect") for c in channels[1:])

    def forward(self, latent: Tensor, size: tuple[int, int], skips: list[Tensor] | None = None) -> list[Tensor]:
        """Decode.

        Args:
            latent: (N, latent_dim).
            size: (H, W) of the finest output.
            skips: (N, C, h, w) maps, matched to levels by size; None runs without skips.

        Returns:
            List over levels, coarsest first, of (N, out_channels, h_k, w_k) raw outputs (no activation).
        """
        if latent.shape[-1] != self.latent_dim:
            raise ValueError(f"latent has {latent.shape[-1]} values, the decoder was built for {self.latent_dim}")
        sizes = level_sizes(size, len(self.blocks))
        x = self.fc(latent).reshape(len(latent), -1, self.grid, self.grid)
        if sizes[0] != (self.grid, self.grid):
            x = F.interpolate(x, size=sizes[0], mode="bilinear", align_corners=False)
        by_size = {tuple(s.shape[-2:]): s for s in skips or []}
        outputs = []
        for k, (block, head) in enumerate(zip(self.blocks, self.heads)):
            x = block(F.interpolate(x, size=sizes[k + 1], mode="nearest"))
            if skips is not None and str(k) in self.fuse:
                skip = by_size.get(sizes[k + 1])
                if skip is None or skip.shape[1] != self.skip_channels[k]:
                    found = {s: tuple(m.shape[1:]) for s, m in by_size.items()}
                    raise ValueError(f"level {k} needs a {self.skip_channels[k]}-channel skip map of size {sizes[k + 1]}; got {found}")
                x = x + self.fuse[str(k)](torch.cat([x, skip], dim=1))
            outputs.append(head(x))
        return outputs


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


class NVSDecoder(Stage):
    """A CNN decoder with skip features: the target image from the transformed latent and the
    depth-warped source features (Hou et al. 2021; ../shared/seeds/001 "NVSDecoder").

    An :class:`UpsamplingDecoder` with three output channels, read as ``0.5 + x`` with no
    squashing, and clamped to [0, 1] only for ``pred_image``. A sigmoid output (the usual choice)
    stalls training here: on white-background objects an L1 loss under Adam drives the logits of
    the background past saturation (measured: logits above 17 after 600 steps, even with Mip-NeRF's
    widened sigmoid), where the gradient vanishes and the output stays all white. Provides
    ``pred_image_scales`` (list over levels, coarsest first, of (B, T, 3, h_k, w_k), unclamped)
    and ``pred_image`` (B, T, 1, 3, H, W), the finest level clamped to [0, 1].
    """

    requires = ("target_latent", "warped_features", "target_size")
    provides = ("pred_image_scales", "pred_image")

    def __init__(self, points: int = 64, channels: tuple[int, ...] = (32, 32, 32, 16, 16),
                 skip_channels: tuple[int, ...] = (64, 32, 16, 0), grid: int = 4):
        super().__init__()
        self.decoder = UpsamplingDecoder(points * 3, channels, skip_channels, 3, grid)

    def forward(self, state: dict[str, Tensor]) -> dict:
        size = tuple(int(x) for x in state["target_size"])
        latent = state["target_latent"]
        b, t = latent.shape[:2]
        raw = self.decoder(latent.flatten(0, 1).flatten(1), size, [f.flatten(0, 1) for f in state["warped_features"]])
        scales = [(0.5 + r).reshape(b, t, *r.shape[1:]) for r in raw]
        return {"pred_image_scales": scales, "pred_image": scales[-1][:, :, None].clamp(0, 1)}
