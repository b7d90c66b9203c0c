"""Segmentation heads: seed 000's head on encoder features, and the constant-label baseline it must beat."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.stages.base import Stage


class SegmentationHead(Stage):
    """Semantic segmentation from frozen encoder features (../shared/seeds/000 section 3.3).

    Four 2x2 stride-2 transposed convolutions, each followed by batch norm and ReLU, then a 1x1
    convolution to ``classes`` logits (21: PASCAL VOC's classes with background). The seed's
    layers go 256 -> 128 -> 64 -> 32 channels; ``channels`` are the four layers' outputs
    (default 128, 64, 32, 32, the fourth read as keeping 32). The seed writes "padding and kernel
    size of two"; padding 0 is used here so that each layer exactly doubles the size (with
    padding 2 a 2x2 stride-2 layer gives 2h - 4). The logits are resized bilinearly to the target
    size when the 16x upsampled map differs from it.

    The head reads the first source's ``source_features[feature_index]``; with
    ``freeze_encoder`` (the seed's frozen encoder) the features are detached, so no gradient
    reaches the encoder. It segments the source view and gives that map to every target, as in
    the VOC protocol where the target is the source view.

    Provides ``seg_logits`` (B, T, classes, H, W) and ``pred_seg`` (B, T, 1, H, W) int64 (argmax).
    """

    requires = ("source_features", "target_K", "target_size")
    provides = ("seg_logits", "pred_seg")

    def __init__(self, in_channels: int = 64, channels: tuple[int, int, int, int] = (128, 64, 32, 32), classes: int = 21,
                 feature_index: int = -1, freeze_encoder: bool = True):
        super().__init__()
        self.feature_index, self.freeze_encoder = feature_index, freeze_encoder
        layers: list[nn.Module] = []
        for c_in, c_out in zip((in_channels, *channels[:-1]), channels):
            layers += [nn.ConvTranspose2d(c_in, c_out, 2, stride=2), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers, nn.Conv2d(channels[-1], classes, 1))

    def forward(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        features = state["source_features"][self.feature_index][:, 0]
        if self.freeze_encoder:
            features = features.detach()
        logits = self.body(features)
        size = tuple(int(x) for x in state["target_size"])
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        t = state["target_K"].shape[1]
        logits = logits[:, None].expand(-1, t, -1, -1, -1)
        return {"seg_logits": logits, "pred_seg": logits.argmax(2, keepdim=True)}


class ConstantLabel(Stage):
    """Segmentation baseline: every pixel of every target gets class ``label`` (0 = background).

    Scores what predicting the majority class earns, the floor a segmentation head must beat.
    Provides ``pred_seg`` (B, T, 1, H, W) int64.
    """

    requires = ("source_image", "target_K", "target_size")
    provides = ("pred_seg",)

    def __init__(self, label: int = 0):
        super().__init__()
        self.label = label

    def forward(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        b, t = state["target_K"].shape[:2]
        h, w = (int(x) for x in state["target_size"])
        seg = torch.full((b, t, 1, h, w), self.label, dtype=torch.int64, device=state["source_image"].device)
        return {"pred_seg": seg}
