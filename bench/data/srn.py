"""Reader for the SRN / pixelNeRF object layout (and the synthetic sets written in it).

Layout under ``root`` (or ``root/<split>``)::

    <object>/rgb/NNNNNN.png        RGB (an alpha channel is dropped)
    <object>/pose/NNNNNN.txt       4x4 cam2world, OpenCV axes: 16 numbers, one line or four
    <object>/intrinsics.txt        ``f cx cy 0.`` / ``0. 0. 0.`` / ``1.`` / ``H W`` (pixels)
    <object>/depth/NNNNNN.png      optional: 16-bit z-depth in millimetres (synthetic sets)
    <object>/mask/NNNNNN.png       optional: 8-bit foreground mask (synthetic sets)

``intrinsics.txt`` is written by shapenet_renderer (github.com/vsitzmann/shapenet_renderer,
``blender_interface.py``: ``'%f %f %f 0.'`` of ``K[0][0], K[0][2], K[1][2]``, then ``0. 0. 0.``,
``1.`` and the resolution) from Blender's camera, whose principal point is measured from the
image's edge (``u_0 = W / 2``: ``131.25 64 64`` at 128 px). :func:`bench.cameras.from_pixel_edges`
converts it to pixel centres (cx = 63.5 at 128 px) and scales it when the images are not
``H x W``, as pixelNeRF resizes them (f and the edge-measured principal point scale with the
image: cx = 31.5 at 64 px); an image of another aspect ratio is an error.

SRN chairs nest the training split one level deeper (``chairs_train/chairs_2.0_train/<object>``):
a split folder whose only entry is a folder of objects is read through. Pose files are parsed
here; that their rotations are orthonormal is checked for every reader by
:func:`bench.data.base.check_view`.

Synthetic sets of :mod:`bench.data.synth` write their version into ``synth.json``; before version
2 their ``intrinsics.txt`` held the principal point in pixel centres (``(S - 1) / 2``), so a set
whose ``synth.json`` records another version than the current generator's is refused.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from torch import Tensor

from bench.cameras import from_pixel_edges
from bench.data.base import Reader
from bench.data.generated import MARKER
from bench.data.io import read_depth_mm, read_mask, read_rgb, read_text
from bench.errors import ConfigError
from bench.types import View

SYNTH_FORMAT = "nvsbench-synth-srn"  # synth.json "format" of bench.data.synth's sets
SYNTH_FORMAT_VERSION = 2  # 2: intrinsics.txt as shapenet_renderer writes it (principal point from the edge)


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
    """``K`` (3, 3) as the file gives it (principal point measured from the image edge) and the (H, W) it refers to."""
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

    revision = 2  # 2: principal point converted from the image edge to pixel centres (was half a pixel off)

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

    @functools.cached_property
    def folder(self) -> Path:
        """The folder holding the object folders (found on first use: the constructor does not touch the disk)."""
        self._check_synthetic_version()
        folder = self.root / self.split if self.split else self.root
        entries = list(folder.iterdir()) if folder.is_dir() else []
        if len(entries) == 1 and entries[0].is_dir() and not (entries[0] / "rgb").is_dir():
            return entries[0]  # SRN chairs: chairs_train/chairs_2.0_train/<object>
        return folder

    def _check_synthetic_version(self) -> None:
        """Refuse a synthetic set written by another version of the generator (see the module docstring)."""
        try:
            marker = json.loads((self.root / MARKER).read_text())
        except (OSError, ValueError):
            return  # not a generated set (or not one this check can read)
        if isinstance(marker, dict) and marker.get("format") == SYNTH_FORMAT and marker.get("version") != SYNTH_FORMAT_VERSION:
            raise ConfigError(
                f"synthetic set {self.root} was written by version {marker.get('version')} of the objects generator, "
                f"whose files this reader does not read (current: {SYNTH_FORMAT_VERSION}); regenerate it (delete the folder and rerun)"
            )

    def scenes(self) -> list[str]:
        """Sorted object ids."""
        if self._scenes is None:
            folder = self.folder
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
        H, W = image.shape[-2:]
        if (H, W) != (h, w) and round(h * W / w) != H:  # not the same picture at another resolution: K cannot be scaled to it
            raise ConfigError(f"image {image_path} is {H}x{W} (H x W), not a scaled copy of the {h}x{w} that {intrinsics_path} describes")
        K = from_pixel_edges(K, (h, w), (H, W))  # a new tensor: the cached one is shared by the object's views
        depth = read_depth_mm(obj / "depth" / f"{view_id}.png") if self.with_depth else None
        mask = read_mask(obj / "mask" / f"{view_id}.png") if self.with_mask else None
        return View(view_id, image, K, read_pose(obj / "pose" / f"{view_id}.txt"), depth, mask)
