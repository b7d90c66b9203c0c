"""Reader for RealEstate10K (Zhou et al. 2018) and ACID (Liu et al. 2021), which share one layout.

Layout under ``root`` (GeoFree's, Rombach et al. 2021, README "Data Preparation", with its
``$TXT_ROOT`` = ``root`` and ``$IMG_ROOT`` = ``root/frames``)::

    <split>/<seq>.txt                      camera file of one clip (``seq``: 16 hex digits)
    frames/<split>/<seq>/<timestamp>.png   frames, named by the timestamp of their camera line

Camera file (RealEstate10K "Dataset Design", google.github.io/realestate10k/download.html;
ACID "come[s] in the same format", GeoFree README): line 1 is the YouTube URL; every further
line is one frame of 19 numbers::

    timestamp  fx fy cx cy  _ _  r11 r12 r13 t1  r21 r22 r23 t2  r31 r32 r33 t3

- ``timestamp``: integer microseconds since the start of the video; a frame's file name is
  ``str(timestamp) + ".png"`` (GeoFree, ``scripts/sparse_from_realestate_format.py``).
- ``fx fy cx cy``: intrinsics normalised by the image width (``fx``, ``cx``) and height
  (``fy``, ``cy``), "where the top left corner of the image is (0,0), and the bottom right
  corner of the image is (1,1)" (RealEstate10K page), so for a W x H image the pixel-unit
  principal point ``cx * W`` is measured from the image's left *edge*: the **pixel-corner**
  convention, in which the centre of pixel column j is at j + 0.5. GeoFree passes
  ``W * cx`` unchanged to COLMAP as the principal point, and COLMAP uses the same corner
  convention ("the upper left image corner has coordinate (0, 0) and the center of the upper
  left most pixel has coordinate (0.5, 0.5)", COLMAP docs, Database Format), which agrees.
  Our convention (:mod:`bench.cameras`) puts pixel centres at integers, so this reader uses::

      K = [[fx * W, 0, cx * W - 0.5], [0, fy * H, cy * H - 0.5], [0, 0, 1]]

  The typical ``cx = cy = 0.5`` then lands on the image centre ((W-1)/2, (H-1)/2), as it does
  in the corner convention. Focal lengths are unaffected by the origin.
- two numbers the page does not describe; GeoFree reads six intrinsic values and uses the
  first four, and so does this reader.
- 12 numbers: the 3x4 world-to-camera matrix ``[R | t]`` in row-major order, such that
  ``K [R | t]`` maps a homogeneous world point to its homogeneous pixel (RealEstate10K page;
  GeoFree reshapes the 12 numbers to (3, 4) and takes ``R = P[:, :3]``, ``t = P[:, 3]``).
  With ``K`` as above (positive focal lengths, rows growing downwards) this is OpenCV's
  camera frame: x right, y down, z forward, which is ours; it is converted to ``cam2world``
  with :func:`bench.cameras.camera_to_world`.

Views are ordered by timestamp (numerically). Frames whose size differs from ``size`` are
resized on load with antialiased bilinear interpolation (``torch.nn.functional.interpolate``,
``align_corners=False, antialias=True``, which the PyTorch docs say matches Pillow's bilinear
resize when downsampling; GeoFree resizes its 640 x 360 frames with Lanczos instead), and ``K``
is built from the normalised values with the output size, which is exact for a resize of the
whole image in the corner convention.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from bench.cameras import camera_to_world
from bench.data.base import Reader, ResizeLog, is_rotation, rotation_defect
from bench.data.io import read_rgb, read_text
from bench.errors import ConfigError
from bench.types import View

VALUES_PER_LINE = 19  # timestamp, 4 intrinsics, 2 unused, 12 pose values


def normalised_to_pixels(intrinsics: Tensor, size: tuple[int, int]) -> Tensor:
    """``K`` (..., 3, 3) in pixels (integer pixel centres) from RE10K's normalised intrinsics.

    Args:
        intrinsics: (..., 4) ``fx fy cx cy`` normalised by width / height, corner convention.
        size: (H, W) of the image in pixels.
    """
    h, w = size
    fx, fy, cx, cy = intrinsics.unbind(-1)
    K = torch.zeros(*intrinsics.shape[:-1], 3, 3, dtype=intrinsics.dtype)
    K[..., 0, 0], K[..., 1, 1] = fx * w, fy * h
    K[..., 0, 2], K[..., 1, 2] = cx * w - 0.5, cy * h - 0.5
    K[..., 2, 2] = 1.0
    return K


def read_cameras(path: Path) -> dict[str, tuple[Tensor, Tensor]]:
    """Frames of one RE10K camera file, by view id (the timestamp as written), in timestamp order.

    Returns:
        ``{view_id: (intrinsics (4,) normalised fx fy cx cy, cam2world (4, 4) OpenCV)}``, float64.

    Raises:
        ConfigError: naming ``file:line`` for a line without 19 numbers, a repeated timestamp, or a
            rotation that is not orthonormal (see :func:`bench.data.base.is_rotation`).
    """
    lines = read_text(path, "camera file").splitlines()
    frames: dict[int, tuple[str, Tensor]] = {}
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or (number == 1 and fields[0].startswith("http")):
            continue  # the URL line and blank lines
        where = f"{path}:{number}"
        if len(fields) != VALUES_PER_LINE:
            raise ConfigError(f"a camera line needs {VALUES_PER_LINE} values (timestamp, fx fy cx cy, 2 unused, 3x4 pose), got {len(fields)}", where)
        try:
            timestamp = int(fields[0])
            values = torch.tensor([float(x) for x in fields[1:]], dtype=torch.float64)
        except ValueError as exc:
            raise ConfigError(f"camera line is not numeric ({exc})", where) from None
        if timestamp in frames:
            raise ConfigError(f"timestamp {timestamp} appears twice", where)
        if not torch.isfinite(values).all():
            raise ConfigError(f"camera line holds non-finite values: {line.strip()}", where)
        rotation = values[6:].reshape(3, 4)[:, :3]
        if not is_rotation(rotation):
            error, det = rotation_defect(rotation)
            raise ConfigError(f"the camera line's 3x3 rotation is not orthonormal (max |RᵀR − I| = {error:.3g}, det = {det:.3g})", where)
        frames[timestamp] = (fields[0], values)
    out = {}
    for timestamp in sorted(frames):
        view_id, values = frames[timestamp]
        pose = values[6:].reshape(3, 4)
        out[view_id] = (values[:4], camera_to_world(pose[:, :3], pose[:, 3]))
    return out


class RE10KReader(Reader):
    """RealEstate10K / ACID clips in their released layout (see the module docstring).

    Args:
        root: the folder holding ``<split>/`` camera files and ``frames/<split>/``.
        split: ``test`` or ``train`` (ACID also has ``validation``).
        size: (H, W) the views are returned at; GeoFree's default is 208 x 368.
        near, far: scene depth bounds given to pipelines (defaults for indoor clips; the poses' scale is
            whatever the dataset's camera files use).
    """

    def __init__(self, root: Path, split: str = "test", size: tuple[int, int] = (208, 368), near: float = 0.1, far: float = 100.0):
        if min(size) < 1:
            raise ConfigError(f"re10k: 'size' must be positive (H, W), got {size}")
        self.root = Path(root)
        self.split = split
        self.size = size
        self.near, self.far = near, far
        self._scenes: list[str] | None = None
        self._cameras: dict[str, dict[str, tuple[Tensor, Tensor]]] = {}
        self.resized = ResizeLog("frames", scales_K=True)

    def scenes(self) -> list[str]:
        """Sorted sequence ids: the camera files in ``<root>/<split>/``."""
        if self._scenes is None:
            folder = self.root / self.split
            if not folder.is_dir():
                raise ConfigError(f"dataset folder not found: {folder} (set it with --data-root)")
            self._scenes = sorted(p.stem for p in folder.glob("*.txt"))
            if not self._scenes:
                raise ConfigError(f"no camera files (<sequence>.txt) in dataset folder {folder}")
        return self._scenes

    def _frames(self, scene: str) -> dict[str, tuple[Tensor, Tensor]]:
        if scene not in self._cameras:
            self._cameras[scene] = read_cameras(self.root / self.split / f"{scene}.txt")
        return self._cameras[scene]

    def _camera(self, scene: str, view_id: str) -> tuple[Tensor, Tensor]:
        frames = self._frames(scene)
        if view_id not in frames:
            raise ConfigError(f"frame {view_id} is not in camera file {self.root / self.split / f'{scene}.txt'}")
        return frames[view_id]

    def view_ids(self, scene: str) -> list[str]:
        """Timestamps of the scene's frames (as written in the camera file), in increasing order."""
        return list(self._frames(scene))

    def pose(self, scene: str, view_id: str) -> Tensor:
        return self._camera(scene, view_id)[1].float()

    def resize_notes(self) -> list[str]:
        return self.resized.notes()

    def load_view(self, scene: str, view_id: str) -> View:
        intrinsics, cam2world = self._camera(scene, view_id)
        image = read_rgb(self.root / "frames" / self.split / scene / f"{view_id}.png")
        if tuple(image.shape[-2:]) != tuple(self.size):
            self.resized.add(tuple(image.shape[-2:]), tuple(self.size))
            image = torch.nn.functional.interpolate(image[None], size=self.size, mode="bilinear", align_corners=False, antialias=True)[0]
        return View(view_id, image, normalised_to_pixels(intrinsics, self.size).float(), cam2world.float())
