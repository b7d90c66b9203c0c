"""Encoders: from source images to features."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from bench.stages.base import Stage


class ResidualBlock(nn.Module):
    """Two convolutions with batch norm and a skip connection (He et al. 2016, "basic block").

    With ``stride`` 2 the block halves the map so that output cell ``b`` is centred on input
    position ``2b + 0.5``, the centre of the two cells it replaces: the first convolution is 4x4
    with padding 1 (it reads inputs ``2b - 1 .. 2b + 2``) and the skip averages 2x2 cells before
    its 1x1 convolution (the average-pooled shortcut of ResNet-D, He et al. 2019, "Bag of Tricks").
    A 3x3 stride-2 convolution would centre cell ``b`` on ``2b``; composed over k scales, features
    then sit 2**k - 0.5 px away from where ``grid_sample(align_corners=False)`` and bilinear
    resizing, which the field and warp stages use, take them to be. An odd size is padded by one
    row / column at the far edge (replicate), so an (H, W) map becomes (ceil(H / 2), ceil(W / 2)).
    """

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.stride = stride
        first = nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False) if stride == 2 else nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)
        self.body = nn.Sequential(
            first, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            *([nn.AvgPool2d(2)] if stride == 2 else []), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 2 and (x.shape[-2] % 2 or x.shape[-1] % 2):
            x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), mode="replicate")
        return (self.body(x) + self.skip(x)).relu()


class ResNetEncoder(Stage):
    """A small ResNet-style CNN with multi-scale features of every source image.

    Scale k (k = 0 .. len(channels) - 1) has ``channels[k]`` channels at 1 / 2**(k+1) of
    the image size (cell ``b`` centred on image pixel ``(b + 0.5) 2**(k+1) - 0.5``, see
    :class:`ResidualBlock`): a stride-2 residual block per scale after a 3x3 stem, as in the
    ResNet encoders of pixelNeRF (Yu et al. 2021) and the depth-guided method
    (../shared/seeds/001), scaled down for CPU training.

    Provides ``source_features``: a list over scales of (B, S, C_k, H / 2**(k+1), W / 2**(k+1)).
    """

    requires = ("source_image",)
    provides = ("source_features",)

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels[0], 3, 1, 1, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True))
        ins = (channels[0], *channels[:-1])
        self.blocks = nn.ModuleList(ResidualBlock(a, b, 2) for a, b in zip(ins, channels))

    def forward(self, state: dict[str, Tensor]) -> dict[str, list[Tensor]]:
        image = state["source_image"]
        b, s = image.shape[:2]
        x = self.stem(image.flatten(0, 1) * 2 - 1)
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x.unflatten(0, (b, s)))
        return {"source_features": features}
