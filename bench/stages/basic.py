"""Stages that need no learning."""

from __future__ import annotations

import torch
from torch import Tensor

from bench.stages.base import Stage


class CopySource(Stage):
    """The ``identity`` baseline: every target is predicted as the first source image.

    Provides ``pred_image`` (B, T, 1, 3, H, W).
    """

    requires = ("source_image", "target_K")
    provides = ("pred_image",)

    def forward(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        src = state["source_image"][:, 0]  # (B, 3, H, W)
        t = state["target_K"].shape[1]
        return {"pred_image": src[:, None, None].expand(-1, t, 1, -1, -1, -1)}  # a view: predictions are never written to


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
