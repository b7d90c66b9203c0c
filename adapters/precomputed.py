"""Adapter ``precomputed``: score images that another program already predicted.

The program writes one PNG per target view as ``<root>/<scene>/<target view id>.png``,
for example ``preds/car_0000/000012.png`` for the SRN-layout quickstart; a generative
method with several draws writes ``<root>/<scene>/<target view id>_<draw>.png`` for
draws 0 .. ``draws - 1``. Use it from a pipeline YAML::

    name: my_method
    adapter: precomputed
    params: {root: ../predictions/my_method, draws: 1}

A missing or unreadable file is recorded as a failure of that sample.
"""

from __future__ import annotations

from pathlib import Path

from bench.adapter import Adapter
from bench.registry import register_adapter


@register_adapter("precomputed")
class PrecomputedImages(Adapter):
    """Predictions read from ``root`` (see the module docstring for the file names)."""

    def __init__(self, root: Path, draws: int = 1):
        self.root = Path(root)
        self.draws = draws

    def _files(self, scene: str, view: str) -> list[Path]:
        folder = self.root / scene
        if self.draws == 1:
            return [folder / f"{view}.png"]
        return [folder / f"{view}_{d}.png" for d in range(self.draws)]

    def predict(self, sample):
        import torch

        from bench.data.io import read_rgb
        from bench.types import Prediction

        images = [torch.stack([read_rgb(f) for f in self._files(sample.spec.scene, t.id)]) for t in sample.targets]
        return Prediction(torch.stack(images))  # (T, D, 3, H, W)
