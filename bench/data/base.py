"""The reader contract: one class per on-disk format, registered in :mod:`bench.registry`.

A reader's constructor takes the suite's ``dataset:`` keys (typed, validated from YAML)
and must not touch the disk: :meth:`Reader.scenes` is the first call that does, and a
missing or malformed file is a :class:`~bench.errors.ConfigError` naming its path.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from bench.types import View


class Reader:
    """Scenes and views of one dataset in its native layout, converted to the harness convention.

    Attributes:
        root: the dataset folder the suite (or ``--data-root``) names.
        provides: optional state fields it fills (``source_depth``, ``source_mask``, ``source_seg``).
        near, far: scene depth bounds, available to pipelines.
        background: background colour (RGB in [0, 1]) of object datasets.
    """

    root: Path
    provides: frozenset[str] = frozenset()
    near: float = 0.1
    far: float = 100.0
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def scenes(self) -> list[str]:
        """Sorted scene ids."""
        raise NotImplementedError

    def view_ids(self, scene: str) -> list[str]:
        """View ids of a scene, in the dataset's order."""
        raise NotImplementedError

    def load_view(self, scene: str, view_id: str) -> View:
        """One view with its camera in the harness convention (:mod:`bench.cameras`)."""
        raise NotImplementedError

    def pose(self, scene: str, view_id: str) -> Tensor:
        """(4, 4) OpenCV cam2world of a view; readers override it when poses are cheaper than images."""
        return self.load_view(scene, view_id).cam2world
