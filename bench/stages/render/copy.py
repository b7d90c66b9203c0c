"""The ``identity`` baseline's renderer: targets predicted as the source image."""

from __future__ import annotations

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
