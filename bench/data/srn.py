"""Reader for the SRN / pixelNeRF object layout (and the synthetic sets written in it).

Layout under ``root`` (or ``root/<split>``)::

    <object>/rgb/NNNNNN.png        RGB (an alpha channel is dropped)
    <object>/pose/NNNNNN.txt       4x4 cam2world, OpenCV axes: 16 numbers, one line or four
    <object>/intrinsics.txt        first line ``f cx cy 0.`` in pixels, last line ``H W``
    <object>/depth/NNNNNN.png      optional: 16-bit z-depth in millimetres (synthetic sets)
    <object>/mask/NNNNNN.png       optional: 8-bit foreground mask (synthetic sets)

Intrinsics are scaled when the images are not ``H x W`` (as pixelNeRF does); an image of
another aspect ratio is an error. SRN chairs nest the training split one level deeper
(``chairs_train/chairs_2.0_train/<object>``): a split folder whose only entry is a folder
of objects is read through. Pose files are parsed here; that their rotations are
orthonormal is checked for every reader by :func:`bench.data.base.check_view`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import Tensor

from bench.data.base import Reader
from bench.data.io import read_depth_mm, read_mask, read_rgb, read_text
from bench.errors import ConfigError
from bench.types import View


def read_pose(path: Path) -> Tensor:
    """(4, 4) cam2world from a text file of 16 numbers (any line layout)."""
    text = read_text(path, "pose file")
    try:
        values = [float(x) for x in text.split()]
    except ValueError as exc:
        raise ConfigError(f"pose file is not numeric: {path}: {exc}") from None
    if len(values) != 16:
        raise ConfigError(f"pose file must hold 16 numbers (a 4x4 matrix), found {len(values)}: {path}")
    return torch.tensor(values, dtype=torch.float32).reshape(4, 4)


def read_intrinsics(path: Path) -> tuple[Tensor, tuple[int, int]]:
    """``K`` (3, 3) and the (H, W) it refers to, from an SRN ``intrinsics.txt``."""
    lines = [ln.split() for ln in read_text(path, "SRN intrinsics file").splitlines() if ln.strip()]
    try:
        f, cx, cy = (float(x) for x in lines[0][:3])
        h, w = (int(float(x)) for x in lines[-1][:2])
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"cannot parse SRN intrinsics {path}: {exc}") from None
    if min(h, w) < 1:
        raise ConfigError(f"SRN intrinsics {path} give an image size of {h}x{w} (H x W); both must be positive")
    K = torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    return K, (h, w)


class SRNReader(Reader):
    """Objects in the SRN layout; ``provides`` lists the optional view fields it reads."""

    def __init__(
        self,
        root: Path,
        split: str | None = None,
        depth: bool = False,
        mask: bool = False,
        near: float = 0.8,
        far: float = 1.8,
        background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    ):
        self.root = Path(root)
        self.split = split
        self.near, self.far = near, far
        self.background = background
        self.provides = frozenset(f for f, on in (("source_depth", depth), ("source_mask", mask)) if on)
        self.with_depth, self.with_mask = depth, mask
        self._scenes: list[str] | None = None
        self._intrinsics = functools.lru_cache(maxsize=64)(read_intrinsics)  # one file per object, read for each of its views

    def _object_folder(self) -> Path:
        folder = self.root / self.split if self.split else self.root
        entries = list(folder.iterdir()) if folder.is_dir() else []
        if len(entries) == 1 and entries[0].is_dir() and not (entries[0] / "rgb").is_dir():
            return entries[0]  # SRN chairs: chairs_train/chairs_2.0_train/<object>
        return folder

    def scenes(self) -> list[str]:
        """Sorted object ids."""
        if self._scenes is None:
            self.folder = folder = self._object_folder()
            if not folder.is_dir():
                raise ConfigError(f"dataset folder not found: {folder} (set it with --data-root)")
            self._scenes = sorted(p.name for p in folder.iterdir() if (p / "rgb").is_dir())
            if not self._scenes:
                raise ConfigError(f"no objects (folders with rgb/) in dataset folder {folder}")
        return self._scenes

    def pose(self, scene: str, view_id: str) -> Tensor:
        return read_pose(self.folder / scene / "pose" / f"{view_id}.txt")

    def view_ids(self, scene: str) -> list[str]:
        return sorted(p.stem for p in (self.folder / scene / "rgb").glob("*.png"))

    def load_view(self, scene: str, view_id: str) -> View:
        obj = self.folder / scene
        image_path, intrinsics_path = obj / "rgb" / f"{view_id}.png", obj / "intrinsics.txt"
        image = read_rgb(image_path)
        K, (h, w) = self._intrinsics(intrinsics_path)
        K = K.clone()  # the cached tensor is shared by the object's views
        H, W = image.shape[-2:]
        if (H, W) != (h, w):
            if round(h * W / w) != H:  # not the same picture at another resolution: K cannot be scaled to it
                raise ConfigError(f"image {image_path} is {H}x{W} (H x W), not a scaled copy of the {h}x{w} that {intrinsics_path} describes")
            K = torch.diag(torch.tensor([W / w, H / h, 1.0])) @ K
        depth = read_depth_mm(obj / "depth" / f"{view_id}.png") if self.with_depth else None
        mask = read_mask(obj / "mask" / f"{view_id}.png") if self.with_mask else None
        return View(view_id, image, K, read_pose(obj / "pose" / f"{view_id}.txt"), depth, mask)
