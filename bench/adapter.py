"""The adapter contract: an external method behind one interface.

Kept free of heavy imports so that adapter files can be discovered (``nvsbench list
adapters``) without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from bench.types import Prediction, Sample


class Adapter:
    """An external method behind one interface. Register with ``@bench.registry.register_adapter``.

    The constructor takes the typed ``params:`` of the pipeline YAML. ``requires`` names
    optional suite fields it needs (``source_depth``, ``source_mask``).
    """

    requires: ClassVar[tuple[str, ...]] = ()

    def load(self, device: str) -> None:
        """Load weights and move to ``device``; called once before the first sample."""

    def predict(self, sample: Sample) -> Prediction:
        """Predict ``sample``'s targets from its sources (target images are not to be read)."""
        raise NotImplementedError
