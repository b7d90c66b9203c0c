"""The metric contract."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class Metric:
    """A per-image score: ``fn(pred (N,...), target (N,...)) -> (N,)``.

    ``field`` is the prediction / ground-truth field compared (``image``, ``depth``...).
    ``unavailable()`` returns why the metric cannot run here (e.g. the weight file it
    looked for), or None when it can.
    """

    fn: Callable[[Tensor, Tensor], Tensor]
    higher_is_better: bool
    field: str = "image"

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.fn(pred, target)

    def unavailable(self) -> str | None:
        return None

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0] if self.fn.__doc__ else ""


def image_metric(higher_is_better: bool) -> Callable[[Callable], Metric]:
    """Decorator turning ``fn(pred (N,3,H,W), target (N,3,H,W)) -> (N,)`` into a :class:`Metric`."""
    return lambda fn: Metric(fn, higher_is_better, "image")
