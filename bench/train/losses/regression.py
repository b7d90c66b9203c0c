"""Photometric losses of the regression references (pixel_field, genvs_render): image and ray errors."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from bench.train.losses import loss, per_draw


@loss(requires=("pred_image",))
def image_l1(state: dict[str, Any], target: dict[str, Tensor]) -> Tensor:
    """Mean absolute error between ``pred_image`` and the target image."""
    pred = state["pred_image"]
    return (pred - per_draw(pred, target["image"])).abs().mean()


@loss(requires=("pred_image",))
def image_mse(state: dict[str, Any], target: dict[str, Tensor]) -> Tensor:
    """Mean squared error between ``pred_image`` and the target image."""
    pred = state["pred_image"]
    return (pred - per_draw(pred, target["image"])).pow(2).mean()


@loss(requires=("ray_rgb", "ray_index"))
def ray_mse(state: dict[str, Any], target: dict[str, Tensor]) -> Tensor:
    """Mean squared error between ``ray_rgb`` and the target pixels its rays pass through.

    The photometric loss of NeRF-style training on random rays (Mildenhall et al. 2020;
    pixelNeRF, Yu et al. 2021): target pixels are gathered at ``ray_index``.
    """
    image = target["image"]  # (B, T, 3, H, W)
    pixels = image.flatten(3).transpose(2, 3)  # (B, T, H*W, 3)
    gt = pixels.gather(2, state["ray_index"][..., None].expand(-1, -1, -1, 3))
    return (state["ray_rgb"] - gt).pow(2).mean()
