"""3DiM's X-UNet (Watson et al. 2022, "Novel View Synthesis with Diffusion Models", ../shared/seeds/002), scaled down.

One UNet whose weights process both frames of a pair, the clean conditioning view and the noisy
target view, as two entries of one batch (B, 2, C, H, W) -> (2B, C, H, W):

- each frame has its own noise level: a log-SNR λ per frame (the conditioning frame gets the clean
  level λ_max), embedded sinusoidally and added in every residual block;
- each frame's camera enters at every resolution: per-pixel ray origins and directions (world frame)
  with a NeRF positional encoding, resized to the resolution and added through a 1x1 convolution;
- at the attention resolutions the two frames exchange information by cross-attention: every token
  of a frame attends to the tokens of the other frame (after self-attention within the frame);
- conditioning dropout for classifier-free guidance is the caller's: a dropped conditioning frame is
  zeros with its camera kept (``cond_mask`` 0 zeroes its image and ray features).

The output is the prediction (ε, v or x_0, as trained) for the noisy frame only, (B, C, H, W).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sinusoidal_embedding(values: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """(N,) scalars -> (N, dim) [cos, sin] features at geometric frequencies (Vaswani et al. 2017; DDPM's timestep embedding)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=values.device) / half)
    angles = values.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def positional_encoding(x: Tensor, frequencies: int) -> Tensor:
    """NeRF's encoding of (..., D) coordinates: x, sin(2^k π x), cos(2^k π x) for k < ``frequencies`` -> (..., D (2F + 1))."""
    scales = (2.0 ** torch.arange(frequencies, dtype=x.dtype, device=x.device)) * math.pi
    angles = x[..., None, :] * scales[:, None]  # (..., F, D)
    return torch.cat([x, angles.sin().flatten(-2), angles.cos().flatten(-2)], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 conv, plus the frame's noise embedding, twice, with a skip (DDPM's residual block)."""

    def __init__(self, c_in: int, c_out: int, emb: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(F.silu(emb))[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class FrameAttention(nn.Module):
    """Self-attention within each frame, then cross-attention from each frame to the other one of its pair."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.norm_self, self.norm_cross = nn.GroupNorm(8, channels), nn.GroupNorm(8, channels)
        self.self_attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape  # n = 2B, frames of a pair at rows 2i, 2i + 1
        tokens = self.norm_self(x).flatten(2).transpose(1, 2)  # (2B, HW, C)
        x = x + self.self_attn(tokens, tokens, tokens, need_weights=False)[0].transpose(1, 2).reshape(n, c, h, w)
        tokens = self.norm_cross(x).flatten(2).transpose(1, 2)
        other = tokens.reshape(n // 2, 2, h * w, c).flip(1).reshape(n, h * w, c)  # each frame's partner
        return x + self.cross_attn(tokens, other, other, need_weights=False)[0].transpose(1, 2).reshape(n, c, h, w)


class XUNet(nn.Module):
    """The X-UNet on pairs (conditioning frame, noisy frame); see the module docstring.

    Args:
        channels: base width; level k has ``channels * mults[k]`` channels.
        mults: width multipliers per resolution (one downsampling between levels).
        attention_levels: the levels (indices into ``mults``) with self- and cross-attention.
        ray_frequencies: positional-encoding frequencies of the ray origins and directions.
    """

    def __init__(self, channels: int = 32, mults: tuple[int, ...] = (1, 2, 2), attention_levels: tuple[int, ...] = (2,),
                 heads: int = 4, ray_frequencies: int = 4, image_channels: int = 3):
        super().__init__()
        emb = 4 * channels
        self.channels = channels
        self.noise_mlp = nn.Sequential(nn.Linear(channels, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.ray_frequencies = ray_frequencies
        ray_dim = 6 * (2 * ray_frequencies + 1)
        widths = [channels * m for m in mults]
        self.stem = nn.Conv2d(image_channels, channels, 3, padding=1)
        self.down, self.up, self.rays_down, self.rays_up = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.attn_down, self.attn_up = nn.ModuleDict(), nn.ModuleDict()
        c = channels
        for k, w in enumerate(widths):
            self.down.append(ResBlock(c, w, emb))
            self.rays_down.append(nn.Conv2d(ray_dim, w, 1))
            if k in attention_levels:
                self.attn_down[str(k)] = FrameAttention(w, heads)
            c = w
        self.middle = ResBlock(c, c, emb)
        self.attn_middle = FrameAttention(c, heads)
        for k in reversed(range(len(widths))):
            w = widths[k]
            self.up.append(ResBlock(c + w, w, emb))
            self.rays_up.append(nn.Conv2d(ray_dim, w, 1))
            if k in attention_levels:
                self.attn_up[str(k)] = FrameAttention(w, heads)
            c = w
        self.out = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, image_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, frames: Tensor, logsnr: Tensor, rays: Tensor, cond_mask: Tensor | None = None) -> Tensor:
        """Predict for the noisy frame of each pair.

        Args:
            frames: (B, 2, C, H, W) conditioning frame (clean) and noisy frame, in [-1, 1] scale.
            logsnr: (B, 2) log-SNR per frame (the conditioning frame's is the clean level).
            rays: (B, 2, 6, H, W) ray origins and directions per pixel (world frame) of each frame.
            cond_mask: (B,) 1 to keep the conditioning frame, 0 to drop it (classifier-free guidance).

        Returns:
            (B, C, H, W) the prediction for frame 1.
        """
        b, _, _, h, w = frames.shape
        if cond_mask is not None:
            keep = cond_mask.to(frames.dtype).view(b, 1, 1, 1)
            frames = torch.stack([frames[:, 0] * keep, frames[:, 1]], 1)
            rays = torch.stack([rays[:, 0] * keep, rays[:, 1]], 1)
        x = self.stem(frames.flatten(0, 1))
        emb = self.noise_mlp(sinusoidal_embedding(logsnr.flatten(), self.channels))
        ray_features = positional_encoding(rays.flatten(0, 1).permute(0, 2, 3, 1), self.ray_frequencies).permute(0, 3, 1, 2)
        skips = []
        for k, block in enumerate(self.down):
            if k > 0:
                x = F.avg_pool2d(x, 2)
            x = block(x, emb) + self.rays_down[k](F.interpolate(ray_features, size=x.shape[-2:], mode="bilinear", align_corners=False))
            if str(k) in self.attn_down:
                x = self.attn_down[str(k)](x)
            skips.append(x)
        x = self.attn_middle(self.middle(x, emb))
        for j, block in enumerate(self.up):
            k = len(self.down) - 1 - j
            skip = skips[k]
            if x.shape[-2:] != skip.shape[-2:]:
                x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], 1), emb) + self.rays_up[j](
                F.interpolate(ray_features, size=x.shape[-2:], mode="bilinear", align_corners=False))
            if str(k) in self.attn_up:
                x = self.attn_up[str(k)](x)
        out = self.out(x).reshape(b, 2, -1, h, w)
        return out[:, 1]
