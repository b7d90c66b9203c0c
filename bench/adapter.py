"""The adapter contract: an external method behind one interface.

Kept free of heavy imports so that adapter files can be discovered (``nvsbench list
adapters``) without importing torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from bench.types import Prediction, Sample


class Adapter:
    """An external method behind one interface. Register with ``@bench.registry.register_adapter``.

    The constructor takes the typed ``params:`` of the pipeline YAML. A weights file named by the
    YAML's ``checkpoint:`` is set as ``checkpoint`` before :meth:`load`; its bytes are hashed into
    the run key, so results of other weights are never reused (files named only in ``params`` are
    not hashed: name the weights with ``checkpoint:``). ``requires`` names
    optional suite fields it needs (``source_depth``, ``source_mask``). ``outputs`` names the
    :class:`~bench.types.Prediction` fields it fills (``image`` and any of ``depth``, ``seg``,
    ``poses``); a suite's metrics on other fields are then reported as not applicable rather
    than failing every sample. None (the default) means undeclared: every metric is tried.
    """

    requires: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...] | None] = None
    checkpoint: Path | None = None

    def load(self, device: str) -> None:
        """Load weights and move to ``device``; called once before the first sample."""

    def fingerprint(self) -> str | None:
        """A digest of what the adapter reads besides its config and checkpoint (prediction files, say), or None.

        It is folded into the run key when the pipeline loads, so a rerun after those inputs changed
        scores again instead of reporting the stored numbers (``precomputed`` hashes its files).
        """
        return None

    def predict(self, sample: Sample) -> Prediction:
        """Predict ``sample``'s targets from its sources.

        The targets are :class:`~bench.types.TargetView` s: id, ``K``, ``cam2world`` and ``size``; their
        image, depth, mask and labels raise :class:`~bench.types.HiddenGroundTruth` when read.

        The global random generators (torch, numpy, random) are seeded for each sample from the run
        seed and the sample id before this call (:func:`bench.pipeline.seed_global_rngs`).
        """
        raise NotImplementedError
