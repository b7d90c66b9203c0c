"""Training losses, named in a pipeline YAML's ``train.losses`` with their weights.

A loss reads fields of the pipeline state (``requires``, checked when training starts)
and the ground truth of the targets, a dict with ``image`` (B, T, 3, H, W) and, when the
training suite provides them, ``depth`` (B, T, H, W) and ``mask`` (B, T, H, W). Predictions
with a draw axis (B, T, D, ...) are compared draw by draw. Each loss returns a scalar.

Each method's losses sit in a module of this package named for it (:mod:`.regression` for the
regression references pixel_field and genvs_render, :mod:`.depth_guided` for seed 001). Register a
loss in :mod:`bench.registry` under ``losses``; its keyword parameters (after
``state`` and ``target``) are set in the YAML next to ``kind`` and ``weight``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor


@dataclass(frozen=True)
class Loss:
    """``fn(state, target, **params) -> scalar``; ``requires`` names the state fields it reads."""

    fn: Callable[..., Tensor]
    requires: tuple[str, ...]
    targets: tuple[str, ...] = ("image",)
    description: Callable[[], str] | None = None  # what it runs on here, e.g. a substitute for missing weights

    def __call__(self, state: dict[str, Any], target: dict[str, Tensor], **params: Any) -> Tensor:
        return self.fn(state, target, **params)

    def describe(self) -> str:
        """Recorded in checkpoints: which variant of the loss this machine ran."""
        return self.description() if self.description else "as defined"


def loss(requires: tuple[str, ...], targets: tuple[str, ...] = ("image",), **kwargs: Any) -> Callable[[Callable], Loss]:
    """Decorator turning ``fn(state, target, **params) -> Tensor`` into a :class:`Loss`."""
    return lambda fn: Loss(fn, requires, targets, **kwargs)


def per_draw(pred: Tensor, gt: Tensor) -> Tensor:
    """``gt`` (B, T, ...) broadcast against ``pred`` (B, T, D, ...)."""
    return gt[:, :, None].expand_as(pred)
