"""Encoders: from source images to features."""

from __future__ import annotations

from torch import Tensor, nn

from bench.nets.resnet import ResidualBlock
from bench.stages.base import Stage


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
