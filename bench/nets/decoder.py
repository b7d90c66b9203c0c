"""A U-Net-style upsampling decoder from a latent vector to multi-scale maps, with optional skip features.

Used by the depth-guided method's depth head (:class:`bench.stages.heads.segmentation.depth.DepthDecoder`) and
image decoder (:class:`bench.stages.render.points.nvs_decoder.NVSDecoder`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
