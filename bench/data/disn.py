"""Reader for the ShapeNet renderings released with DISN (Xu et al. 2019), with depth.

The depth-guided skip NVS method (``../shared/seeds/001``, section 3.1) trains and tests on "an
extended version of ShapeNet" from DISN ("DISN: Deep Implicit Surface Network for High-quality
Single-view 3D Reconstruction", NeurIPS 2019): the renderings of
github.com/Xharlie/ShapenetRender_more_variation (linked from the README of
github.com/Xharlie/DISN), which add depth, normal and albedo images to 3D-R2N2-style views.
It uses the view-centred ("easy") cars (02958343) and chairs (03001627) at 256 x 256.

Sources of every format fact below: that repository's ``README.md``, ``render_batch.py`` (folder
layout), ``render_blender.py`` (cameras, depth encoding, view sampling) and ``cam_read.py``
(intrinsics, DISN's ``getBlenderProj``); DISN's ``data/filelists`` (splits) and
``data/data_sdf_h5_queue.py`` (background handling).

Layout under ``root`` (``render_batch.py`` writes ``{image,albedo,depth,normal}/<category>/<object>/{easy,hard}``)::

    image/<category>/<object>/<variant>/NN.png                  RGBA 8-bit, 224 x 224, transparent background
    image/<category>/<object>/<variant>/rendering_metadata.txt  one line per view; line i is view NN = i (00, 01, ...)
    depth/<category>/<object>/<variant>/NN.png                  8-bit RGBA with R = G = B = A = encoded depth (below)
    filelists/<category>_<split>.lst                            optional split lists, one object id a line

``albedo/`` and ``normal/`` are not read. Each object has 36 views per variant. The split lists are
not part of the render download: copy DISN's ``data/filelists/`` (``02958343_test.lst``: 627 cars,
``03001627_test.lst``: 1311 chairs) into ``root/filelists/``, or write any other list there (e.g.
the object ids of Hou et al.'s test pairs as ``<category>_hou.lst`` with ``split: hou``).

**Metadata line** (``render_blender.py`` writes ``"[{},{},...], \\n".format(...)``)::

    [yaw, elevation, 0, distance_ratio, 35, 32, 1.75, x_shift, y_shift, z_shift],

yaw and elevation in degrees, the camera distance is ``distance_ratio * 1.75`` (max distance),
35 / 32 are the focal length and sensor width in mm. The README's table names the second column
"camera Roll" and the third "camera Pitch", but ``render_blender.py`` (``camera_info``) uses the
second as the elevation and writes 0 in the third. The shift records where the script moved
``target_obj`` (0 in the easy variant, uniform in [-0.2, 0.2] in the hard one); it is not applied
(measured below).

**Cameras** (``render_blender.py``: ``camera_info`` and a ``TRACK_TO`` constraint, -Z to the
origin, up Y): in Blender's world (z up), the centre is
``C = r (cos(el) cos(yaw), -cos(el) sin(yaw), sin(el))`` and the camera looks at the origin with
no roll (:func:`bench.cameras.look_at` with world up +z). This reader's world is Blender's; the
azimuth the ``azimuth_pairs`` protocol measures is ``-yaw`` (mod 360). Blender's OBJ import
(forward -Z, up Y) maps ShapeNet model coordinates (x, y, z) to (x, -z, y) in this world.
Intrinsics: ``f = 35 / 32 * W`` pixels (Blender fits the 32 mm sensor to the width of a square
image; ``getBlenderProj`` computes the same ``f_u``), principal point at the image centre:
``getBlenderProj``'s ``u_0 = W / 2`` has pixel edges at integers, which is ``(W - 1) / 2`` here.

**Depth** (``render_blender.py``): Blender Internal's Z pass (planar z-depth, ShapeNet units)
goes through a Map Value node with offset -0.7, size 1.4 (``--depth_scale`` default) and
``min 0`` into an 8-bit PNG, so ``v / 255 = clamp((z - 0.7) * 1.4, 0, 1)`` and
``z = 0.7 + v / (255 * 1.4)`` (2.8 mm steps). ``v = 255`` is background *or* farther than
0.7 + 1 / 1.4 = 1.414 (clipped: the far side of an object is often invalid), ``v = 0`` is nearer
than 0.7: both are invalid (0).

Checked on the sample car ``1176dff7f0ec879719d740e0f6a9a113`` shipped in that repository's
``samples/``: reprojecting each easy view's depth (read by this reader) into the next view agrees
with that view's depth to a median of 1.5 mm (98 % of pixels within 1 cm; 1.8 mm after resizing
to 256); decoding the PNG as sRGB instead gives 60 mm, reading it as distance along the ray
4.9 mm, the mirrored azimuth ``+yaw`` 21 mm. The hard views agree the same way (1.5 mm) only
with the shift left out (moving the cameras by it gives 80 mm), and their silhouettes are no
more off-centre than the easy ones (presumably the script moves only ``target_obj``, the last
object Blender's OBJ import created, not the whole model).
Depth is often clipped: in 5 of the 36 easy views of that car no object pixel has a valid depth.

**Images** are composited over ``background`` with their (straight) alpha; the mask is
alpha > 127. DISN's own loader drops the alpha (black background) or whitens the alpha = 0
pixels (``--backcolorwhite``). Images are resized to ``size`` x ``size`` (the method's 256):
RGB bilinearly with antialiasing, depth and mask by nearest neighbour; ``K`` is scaled about
pixel edges (:func:`bench.cameras.from_pixel_edges`: ``c' = s u_0 - 0.5``).

**View sampling** (``render_blender.py``): easy view i has yaw ``(i + 1) * 10`` plus a uniform
jitter in [-5, 5] degrees, elevation uniform in [20, 30], distance ratio uniform in [0.65, 1]
(hard: elevation in [0, 45], ratio in [0.6, 1]). Because of the jitter, pairs exactly 40 degrees
apart (within ``azimuth_pairs``' 0.5 degree tolerance) are about a tenth of the pairs four views
apart (10 of 72 on the sample car).

Hou et al. 2021 (code: github.com/AaltoVision/warped-skipconnection-nvs,
``data/shapenet_data_loader.py``) in fact read the renderings of Chen et al. 2019
(``images/<model>_<azimuth>_<elevation>.png``, 18 azimuths 20 degrees apart x 3 elevations, test
pairs in ``eval_<category>_40.txt``), which have no depth; this reader follows the method's
description (DISN's renderings, whose depth the method is scored on).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from bench.cameras import from_pixel_edges, look_at
from bench.data.base import Reader
from bench.data.io import composite, read_array, read_rgba, read_text
from bench.errors import ConfigError
from bench.types import View

METADATA = "rendering_metadata.txt"
DEPTH_OFFSET = 0.7  # render_blender.py: Map Value offset -0.7
DEPTH_SCALE = 1.4  # render_blender.py: Map Value size, --depth_scale default
CATEGORIES = {"car": "02958343", "chair": "03001627"}  # ShapeNet synset ids (DISN's info.json)


class ViewParams(NamedTuple):
    """One line of ``rendering_metadata.txt`` (angles in degrees, distance in ShapeNet units)."""

    yaw: float
    elevation: float
    distance: float  # distance_ratio * max distance
    focal_mm: float
    sensor_mm: float


def format_metadata_line(yaw: float, elevation: float, distance_ratio: float) -> str:
    """An easy-variant metadata line as ``render_blender.py`` writes it (35 mm, 32 mm sensor, max distance 1.75, no shift)."""
    return f"[{yaw!r},{elevation!r},0,{distance_ratio!r},35,32,1.75,0.0,0.0,0.0], \n"


def parse_metadata(path: Path) -> list[ViewParams]:
    """The views of one ``rendering_metadata.txt``, in line order; a bad line is a ConfigError naming ``file:line``."""
    lines = read_text(path, "DISN metadata file").splitlines()
    views = []
    for number, line in enumerate(lines, 1):
        body = line.strip().rstrip(",").strip()
        if not body:
            continue
        try:
            if not (body.startswith("[") and body.endswith("]")):
                raise ValueError("expected '[v1, ..., v10],'")
            values = [float(x) for x in body[1:-1].split(",")]
            if len(values) != 10:
                raise ValueError(f"expected 10 values, found {len(values)}")
        except ValueError as exc:
            raise ConfigError(f"bad DISN metadata line {line.strip()!r}: {exc}", f"{path}:{number}") from None
        yaw, elevation, _, ratio, focal, sensor, max_dist = values[:7]  # the shift (values[7:]) is not applied
        views.append(ViewParams(yaw, elevation, ratio * max_dist, focal, sensor))
    if not views:
        raise ConfigError(f"DISN metadata file lists no views: {path}")
    return views


def camera_to_world(view: ViewParams) -> Tensor:
    """(4, 4) OpenCV cam2world of a view: on its sphere around the origin, looking at it, world up +z."""
    yaw, el = math.radians(view.yaw), math.radians(view.elevation)
    centre = torch.tensor([math.cos(el) * math.cos(yaw), -math.cos(el) * math.sin(yaw), math.sin(el)], dtype=torch.float64)
    return look_at(view.distance * centre[None])[0].float()


def intrinsics(view: ViewParams, height: int, width: int, size: tuple[int, int] | None = None) -> Tensor:
    """(3, 3) ``K`` of a ``height x width`` render, for the image resized to ``size`` (H, W; default: not resized).

    ``getBlenderProj``'s ``f = focal / sensor * W`` and ``u_0 = W / 2``, ``v_0 = H / 2`` (from the
    image edge), converted by :func:`bench.cameras.from_pixel_edges`: the principal point is the
    image centre, ``(W - 1) / 2`` unresized.
    """
    f = view.focal_mm / view.sensor_mm * width
    from_edge = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    return from_pixel_edges(from_edge, (height, width), size)


def decode_depth(encoded: np.ndarray) -> Tensor:
    """(H, W) float32 z-depth from DISN's 8-bit depth values (H, W); 0 where the value is 0 or 255."""
    v = torch.from_numpy(encoded.astype(np.float32))
    return torch.where((v > 0) & (v < 255), DEPTH_OFFSET + v / (255.0 * DEPTH_SCALE), torch.zeros_like(v))


def encode_depth(depth: Tensor) -> np.ndarray:
    """(H, W) uint8 DISN depth values from z-depth (H, W), 0 = background (written as 255)."""
    v = ((depth - DEPTH_OFFSET) * DEPTH_SCALE).clamp(0.0, 1.0) * 255.0
    return torch.where(depth > 0, v.round(), torch.full_like(v, 255.0)).numpy().astype(np.uint8)


def _resize(x: Tensor, size: int, mode: Literal["bilinear", "nearest-exact"]) -> Tensor:
    """Resize (C, H, W) to (C, size, size); bilinear is antialiased."""
    if x.shape[-2:] == (size, size):
        return x
    if mode == "bilinear":
        return F.interpolate(x[None], size=(size, size), mode=mode, align_corners=False, antialias=True)[0]
    return F.interpolate(x[None], size=(size, size), mode=mode)[0]


class DISNReader(Reader):
    """DISN's ShapeNet renderings; scenes are ``<category>/<object>``, view ids ``00``, ``01``, ...

    Args:
        root: the folder holding ``image/`` and ``depth/`` (and ``filelists/`` for ``split``).
        categories: ShapeNet synset ids to read (default cars and chairs).
        variant: ``easy`` (view-centred) or ``hard`` (elevations 0 to 45 degrees, see the module docstring).
        split: read only the objects listed in ``root/filelists/<category>_<split>.lst``.
        size: output images are ``size x size`` (None: the rendered 224).
        depth: read ``depth/`` (provides ``source_depth``).
        near, far: depth bounds given to pipelines (cameras are 1.14 to 1.75 from the origin).
        background: RGB the transparent background is composited over.
    """

    def __init__(
        self,
        root: Path,
        categories: tuple[str, ...] = (CATEGORIES["car"], CATEGORIES["chair"]),
        variant: Literal["easy", "hard"] = "easy",
        split: str | None = None,
        size: int | None = 256,
        depth: bool = True,
        near: float = 0.5,
        far: float = 2.5,
        background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    ):
        if size is not None and size < 1:
            raise ConfigError(f"DISN reader: 'size' must be at least 1, got {size}")
        self.root = Path(root)
        self.categories, self.variant, self.split, self.size = tuple(categories), variant, split, size
        self.with_depth = depth
        self.near, self.far, self.background = near, far, background
        self.provides = frozenset({"source_mask", "source_depth"} if depth else {"source_mask"})
        self._scenes: list[str] | None = None
        self._views: dict[str, list[ViewParams]] = {}

    def _objects(self, category: str) -> list[str]:
        folder = self.root / "image" / category
        if not folder.is_dir():
            raise ConfigError(f"DISN category folder not found: {folder} (set the dataset root with --data-root)")
        rendered = {p.parent.parent.name for p in folder.glob(f"*/{self.variant}/{METADATA}")}
        if self.split is None:
            return sorted(rendered)
        listing = self.root / "filelists" / f"{category}_{self.split}.lst"
        text = read_text(listing, "split list", " (copy DISN's data/filelists/ there)")
        listed = [ln.strip() for ln in text.splitlines() if ln.strip()]
        missing = [obj for obj in listed if obj not in rendered]
        if missing:
            raise ConfigError(f"{len(missing)} object(s) of {listing} have no {self.variant} renderings under {folder}, e.g. {missing[0]}")
        return sorted(set(listed))

    def scenes(self) -> list[str]:
        """Sorted ``<category>/<object>`` ids."""
        if self._scenes is None:
            self._scenes = sorted(f"{c}/{obj}" for c in self.categories for obj in self._objects(c))
            if not self._scenes:
                raise ConfigError(f"no {self.variant} renderings (*/{self.variant}/{METADATA}) under {self.root / 'image'}")
        return self._scenes

    def _metadata(self, scene: str) -> list[ViewParams]:
        if scene not in self._views:
            self._views[scene] = parse_metadata(self.root / "image" / scene / self.variant / METADATA)
        return self._views[scene]

    def _view(self, scene: str, view_id: str) -> ViewParams:
        views = self._metadata(scene)
        if not (view_id.isdigit() and int(view_id) < len(views)):
            raise ConfigError(f"view '{view_id}' is not in {self.root / 'image' / scene / self.variant / METADATA} ({len(views)} views)")
        return views[int(view_id)]

    def view_ids(self, scene: str) -> list[str]:
        return [f"{i:02d}" for i in range(len(self._metadata(scene)))]

    def pose(self, scene: str, view_id: str) -> Tensor:
        """From the metadata alone (no image is read)."""
        return camera_to_world(self._view(scene, view_id))

    def load_view(self, scene: str, view_id: str) -> View:
        params = self._view(scene, view_id)
        path = self.root / "image" / scene / self.variant / f"{view_id}.png"
        rgba = read_rgba(path)
        alpha = rgba[3:]
        image = composite(rgba, self.background)
        hw = (image.shape[-2], image.shape[-1])
        K = intrinsics(params, *hw, None if self.size is None else (self.size, self.size))
        mask = alpha > 0.5
        depth = None
        if self.with_depth:
            depth_path = self.root / "depth" / scene / self.variant / f"{view_id}.png"
            encoded = read_array(depth_path)
            encoded = encoded[..., 0] if encoded.ndim == 3 else encoded
            if encoded.shape != hw:
                raise ConfigError(f"depth image {depth_path} is {encoded.shape}, its RGB image is {hw}")
            depth = decode_depth(encoded)[None]
        if self.size is not None:
            image = _resize(image, self.size, "bilinear").clamp(0.0, 1.0)
            mask = _resize(mask.float(), self.size, "nearest-exact") > 0.5
            depth = None if depth is None else _resize(depth, self.size, "nearest-exact")
        return View(view_id, image, K, camera_to_world(params), None if depth is None else depth[0], mask[0])
