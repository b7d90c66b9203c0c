"""Reader for the NeRF "Blender synthetic" layout (Mildenhall et al. 2020, "NeRF: Representing
Scenes as Neural Radiance Fields for View Synthesis"), and the camera conversions it needs.

Layout, under ``root`` (one object) or under each ``root/<object>/`` (several objects)::

    transforms_{train,val,test}.json
    {train,val,test}/r_<i>.png            RGBA, transparent background

A transforms file is ``{"camera_angle_x": fov_x, "frames": [{"file_path": "./test/r_0",
"transform_matrix": [[...4 rows of 4...]]}, ...]}``. Facts used, with their sources:

- ``file_path`` is relative to the folder holding the JSON and has no extension; the image
  is ``file_path + ".png"`` (``load_blender.py`` of github.com/bmild/nerf). A ``file_path``
  that already ends in an extension (nerfstudio's format) is used as it is.
- ``transform_matrix`` is camera-to-world with OpenGL/Blender camera axes: x right, y up,
  z backwards, so the camera looks along -z. The original code casts the ray of pixel
  (column i, row j) along ``((i - W/2)/f, -(j - H/2)/f, -1)`` in camera axes
  (``get_rays`` in ``run_nerf_helpers.py`` of bmild/nerf), and the nerfstudio "Data
  conventions" page (docs.nerf.studio/quickstart/data_conventions.html) states the same
  convention and that OpenCV/COLMAP differ by the sign of the y and z axes.
  :func:`flip_camera_yz` converts to the harness's OpenCV ``cam2world`` at this edge.
- ``camera_angle_x`` is the horizontal field of view in radians:
  ``f = 0.5 W / tan(0.5 camera_angle_x)`` pixels, the same for x and y (``load_blender.py``).
- Images are RGBA with a transparent background; NeRF's ``white_bkgd`` option composites
  them as ``rgb * alpha + (1 - alpha)`` (``run_nerf.py`` of bmild/nerf). This reader
  composites onto ``background`` (white by default): ``rgb * alpha + background * (1 - alpha)``.
- Scene bounds of the NeRF synthetic scenes: ``near = 2``, ``far = 6`` (``run_nerf.py``), the
  defaults here.

Principal point: Blender renders with the principal point at the centre of the sensor,
``(W / 2, H / 2)`` measured from the image edge, which is ``((W - 1) / 2, (H - 1) / 2)`` with pixel
centres at integer coordinates (:mod:`bench.cameras`, :func:`bench.cameras.from_pixel_edges`).
nerfstudio's Blender parser agrees: it sets ``cx = W / 2`` and casts rays through ``index + 0.5``
(``blender_dataparser.py`` and ``Cameras.get_image_coords``, ``pixel_offset=0.5``). The original
NeRF code casts pixel index i at ``i - W/2``, half a pixel away from the rendered centre; this
reader follows the renderer, not that shift.

Optional intrinsics in nerfstudio's style (``fl_x``, ``fl_y``, ``cx``, ``cy`` in pixels of the
stored image; docs.nerf.studio "Data conventions", "Camera intrinsics") replace the ones
derived from ``camera_angle_x``; a frame's own keys come before the file's top-level keys.
nerfstudio's ``cx``/``cy`` count pixel centres at ``+0.5`` (from the edge), so they are shifted by -0.5 here;
a missing ``fl_y`` equals ``fl_x``. nerfstudio's ``w`` and ``h`` (the image size those pixels
refer to), when given, must be the stored image's size.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from bench.cameras import from_pixel_edges
from bench.data.base import ORTHONORMAL_TOLERANCE, Reader, is_rotation, rotation_defect
from bench.data.io import composite, inside, read_rgba, read_text
from bench.errors import ConfigError
from bench.types import View


def transforms_file(folder: Path, split: str) -> Path:
    """``folder/transforms_<split>.json``."""
    return folder / f"transforms_{split}.json"


def flip_camera_yz(cam2world: Tensor) -> Tensor:
    """Convert camera-to-world transforms between OpenGL/Blender and OpenCV camera axes.

    OpenGL/Blender cameras have x right, y up, z backwards; OpenCV cameras x right, y down,
    z forward. The conversion negates the camera's y and z axes (the second and third
    columns), ``cam2world @ diag(1, -1, -1, 1)``; the camera centre does not move. The flip is
    its own inverse, so the same function converts in both directions.

    Args:
        cam2world: (..., 4, 4) camera-to-world transforms.

    Returns:
        (..., 4, 4) the same cameras with the other axis convention.
    """
    return cam2world * cam2world.new_tensor([1.0, -1.0, -1.0, 1.0])


def focal_from_fov(camera_angle_x: float, width: int) -> float:
    """Focal length in pixels of a ``width``-pixel image with horizontal field of view ``camera_angle_x`` (radians)."""
    return 0.5 * width / math.tan(0.5 * camera_angle_x)


def pinhole(fx: float, fy: float, cx: float, cy: float) -> Tensor:
    """(3, 3) float32 ``K`` from focal lengths and principal point, in pixels."""
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float32)


def fov_intrinsics(camera_angle_x: float, width: int, height: int) -> Tensor:
    """(3, 3) ``K`` of a Blender camera: ``f`` from :func:`focal_from_fov`, principal point at the image centre.

    The centre is ``((width - 1) / 2, (height - 1) / 2)`` with pixel centres at integer
    coordinates (see the module docstring).
    """
    f = focal_from_fov(camera_angle_x, width)
    return from_pixel_edges(pinhole(f, f, width / 2, height / 2), (height, width))


@dataclass(frozen=True)
class Frame:
    """One entry of ``frames``: view id, image file, OpenCV cam2world (4, 4) and the intrinsics keys it sets."""

    id: str
    image: Path
    cam2world: Tensor
    intrinsics: dict


def _camera(matrix: object, where: str) -> Tensor:
    """OpenCV cam2world (4, 4) from a JSON ``transform_matrix``; a ConfigError unless it is a 4x4 rigid transform."""
    try:
        gl = torch.tensor(matrix, dtype=torch.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: transform_matrix is not a 4x4 matrix of numbers: {str(matrix)[:80]}") from None
    if gl.shape != (4, 4) or not torch.isfinite(gl).all():
        raise ConfigError(f"{where}: transform_matrix must be a finite 4x4 matrix, got shape {tuple(gl.shape)}")
    if not is_rotation(gl[:3, :3]):
        error, det = rotation_defect(gl[:3, :3])
        raise ConfigError(
            f"{where}: the 3x3 part of transform_matrix is not a rotation (max |RᵀR − I| = {error:.3g}, "
            f"det = {det:.3g}; needs |RᵀR − I| <= {ORTHONORMAL_TOLERANCE} and det > 0)"
        )
    return flip_camera_yz(gl).float()


def _image_path(folder: Path, file_path: str) -> Path:
    path = folder / file_path
    return path if path.suffix else path.with_name(path.name + ".png")


def read_transforms(path: Path) -> tuple[dict, list[Frame]]:
    """Parse a transforms file: its top-level keys (without ``frames``) and its frames, in file order.

    Raises:
        ConfigError: naming ``path`` (and the frame index) for a missing or malformed file,
            a frame without ``file_path`` / ``transform_matrix``, a matrix that is not a 4x4
            rigid transform, or two frames with the same view id.
    """
    try:
        meta = json.loads(read_text(path, "transforms file"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"cannot parse transforms file {path}: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
        raise ConfigError(f"transforms file has no 'frames' list: {path}")
    frames, seen = [], set()
    for index, entry in enumerate(meta.pop("frames")):
        where = f"{path}: frame {index}"
        if not isinstance(entry, dict) or "file_path" not in entry or "transform_matrix" not in entry:
            raise ConfigError(f"{where}: needs 'file_path' and 'transform_matrix'")
        image = inside(path.parent, _image_path(path.parent, str(entry["file_path"])), f"{where}: file_path")
        if image.stem in seen:
            raise ConfigError(f"{where}: view id '{image.stem}' appears twice")
        seen.add(image.stem)
        keys = {k: entry[k] for k in ("fl_x", "fl_y", "cx", "cy", "w", "h") if k in entry}
        frames.append(Frame(image.stem, image, _camera(entry["transform_matrix"], where), keys))
    return meta, frames


def frame_intrinsics(meta: dict, frame: Frame, width: int, height: int, where: Path) -> Tensor:
    """(3, 3) ``K`` of one frame of a ``width x height`` image (see the module docstring for the precedence).

    Raises:
        ConfigError: naming ``where`` when neither ``fl_x`` nor ``camera_angle_x`` is given, when a key
            is not a number, or when nerfstudio's ``w`` / ``h`` (the image size the pixel intrinsics
            refer to) differ from the image's size.
    """
    def key(name: str) -> float | None:
        value = frame.intrinsics.get(name, meta.get(name))
        if value is None:
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"'{name}' of frame {frame.id} is not a number: {value!r}: {where}") from None

    for name, actual in (("w", width), ("h", height)):
        stated = key(name)
        if stated is not None and stated != actual:
            raise ConfigError(f"image of frame {frame.id} is {width}x{height} (W x H) but the transforms file gives {name} = {stated:g}: {where}")
    fx = key("fl_x")
    if fx is None:
        if key("camera_angle_x") is None:
            raise ConfigError(f"transforms file has neither 'camera_angle_x' nor 'fl_x' (frame {frame.id}): {where}")
        fx = focal_from_fov(key("camera_angle_x"), width)
    fy, cx, cy = key("fl_y"), key("cx"), key("cy")
    from_edge = pinhole(fx, fx if fy is None else fy, width / 2 if cx is None else cx, height / 2 if cy is None else cy)
    return from_pixel_edges(from_edge, (height, width))


class BlenderReader(Reader):
    """Objects in the NeRF-synthetic layout, one object at ``root`` or one per subfolder.

    Scenes are the subfolders of ``root`` holding ``transforms_<split>.json`` (sorted), or a
    single scene named after ``root`` when ``root`` holds it itself. View ids are the image
    file stems (``r_0``), in the order of the file's ``frames`` (so protocol index 0 is the
    first frame). ``mask: true`` provides the alpha channel (alpha > 0.5) as ``source_mask``.
    """

    def __init__(
        self,
        root: Path,
        split: str = "test",
        mask: bool = False,
        near: float = 2.0,
        far: float = 6.0,
        background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    ):
        self.root = Path(root)
        self.split = split
        self.with_mask = mask
        self.provides = frozenset({"source_mask"} if mask else ())
        self.near, self.far = near, far
        self.background = background
        self._folders: dict[str, Path] | None = None
        self._parsed: dict[str, tuple[dict, dict[str, Frame]]] = {}

    def scenes(self) -> list[str]:
        """Sorted object names."""
        if self._folders is None:
            if not self.root.is_dir():
                raise ConfigError(f"dataset folder not found: {self.root} (set it with --data-root)")
            if transforms_file(self.root, self.split).is_file():
                self._folders = {self.root.resolve().name: self.root}
            else:
                self._folders = {p.name: p for p in sorted(self.root.iterdir()) if transforms_file(p, self.split).is_file()}
            if not self._folders:
                raise ConfigError(
                    f"transforms file not found: {transforms_file(self.root, self.split)} "
                    f"(nor in any subfolder of {self.root}; split '{self.split}')"
                )
        return sorted(self._folders)

    def _scene(self, scene: str) -> tuple[dict, dict[str, Frame]]:
        if scene not in self._parsed:
            meta, frames = read_transforms(transforms_file(self._folders[scene], self.split))
            self._parsed[scene] = meta, {f.id: f for f in frames}
        return self._parsed[scene]

    def view_ids(self, scene: str) -> list[str]:
        return list(self._scene(scene)[1])

    def pose(self, scene: str, view_id: str) -> Tensor:
        return self._scene(scene)[1][view_id].cam2world.clone()

    def load_view(self, scene: str, view_id: str) -> View:
        meta, frames = self._scene(scene)
        frame = frames[view_id]
        rgba = read_rgba(frame.image)
        h, w = rgba.shape[-2:]
        K = frame_intrinsics(meta, frame, w, h, transforms_file(self._folders[scene], self.split))
        mask = rgba[3] > 0.5 if self.with_mask else None
        return View(view_id, composite(rgba, self.background), K, frame.cam2world.clone(), mask=mask)
