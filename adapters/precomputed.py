"""Adapter ``precomputed``: score images that another program already predicted.

The program writes one PNG per sample and target view as ``<root>/<sample id>/<target view id>.png``:
for the quickstart's sample ``car_0000/000000-000012`` (scene ``car_0000``, source view 000000,
target 000012) that is ``preds/car_0000/000000-000012/000012.png``. Files are named by sample, not
only by target view, so a target predicted from different sources in different samples (GeoFree's
triplets predict each frame from two others) never shares a file. A generative method with several
draws writes ``<target view id>_<draw>.png`` for draws 0 .. ``draws - 1``. ``nvsbench data samples
SUITE`` lists every sample id with its source and target view ids; the protocol makes the same ids
on every run. Use it from a pipeline YAML::

    name: my_method
    adapter: precomputed
    params: {root: ../predictions/my_method, draws: 1}

Like every adapter it gets the targets' cameras and sizes, never their images. The content of
every file under ``root`` is hashed into the run key when the pipeline loads, so rerunning the same
command after the files were overwritten scores them again (hashing reads each file once, about
as long as reading the PNGs to score them). A missing or unreadable file is a failure of its sample.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bench.adapter import Adapter
from bench.errors import ConfigError
from bench.registry import register_adapter


@register_adapter("precomputed")
class PrecomputedImages(Adapter):
    """Predictions read from ``root`` (see the module docstring for the file names)."""

    outputs = ("image",)

    def __init__(self, root: Path, draws: int = 1):
        if draws < 1:
            raise ConfigError(f"precomputed: draws must be at least 1, got {draws}")
        self.root = Path(root)
        self.draws = draws

    def fingerprint(self) -> str:
        """sha256 over the relative path and bytes of every file under ``root``, in path order."""
        if not self.root.is_dir():
            raise ConfigError(f"precomputed: predictions folder not found: {self.root}")
        digest = hashlib.sha256()
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(self.root)).encode() + b"\0")
            with path.open("rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
        return digest.hexdigest()

    def files(self, sample_id: str, view: str) -> list[Path]:
        """The prediction files of target ``view`` in sample ``sample_id``, one per draw."""
        folder = self.root / sample_id
        if self.draws == 1:
            return [folder / f"{view}.png"]
        return [folder / f"{view}_{d}.png" for d in range(self.draws)]

    def predict(self, sample):
        import torch

        from bench.data.io import read_rgb
        from bench.types import Prediction

        images = [torch.stack([read_rgb(f) for f in self.files(sample.id, t.id)]) for t in sample.targets]
        return Prediction(torch.stack(images))  # (T, D, 3, H, W)
