"""Residual blocks of the project's CNN encoders."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


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
