"""Synthetic objects in the NeRF "Blender synthetic" layout, with cameras over a wide range of distances.

The stand-in for the pose-estimation / NVS data of the SiT flow + pose seed
(../shared/seeds/003): objects centred at the origin, cameras on spheres around them
looking at the origin, each view a (camera pose, image, focal length) triple. Its training
set put the cameras at distances 3-5 and evaluated at 1-7; this generator writes the
evaluation split (``test``) with distances uniform in ``radius`` (default [1, 7]), so that
the in-range [3, 5] and out-of-range [1, 3) ∪ (5, 7] cameras of one set can be compared
(suite key ``radius_bins``).

Objects, shading and rendering are those of :mod:`bench.data.synth` (car- and chair-like
meshes of radius ``OBJECT_RADIUS`` = 0.55, rendered with pytorch3d through
:func:`bench.cameras.to_pytorch3d`). Cameras come from :func:`bench.data.synth.object_cameras`
(azimuth uniform in [0, 360), elevation uniform in [5, 60] degrees, world +z up).

Field of view: one horizontal FOV ``fov_deg`` for every view (square images, so the
vertical FOV is the same). The default 70° keeps the object's bounding sphere fully in
view at distance 1 (it fits for distances >= 0.55 / sin(35°) = 0.96); the price is that
at distance 7 the object is small (its bounding sphere about 7 px across at 64 x 64).
NeRF's own scenes use 0.6911 rad (39.6°) at distance 4; with that FOV the nearest
cameras here would clip the object.

Layout written under ``out`` (see :mod:`bench.data.blender` for the format and its sources)::

    synth.json                                generator parameters
    <obj>/transforms_test.json                camera_angle_x; frames: file_path ./test/r_<i>, transform_matrix
    <obj>/test/r_<i>.png                      8-bit RGBA, alpha 255 on the object and 0 elsewhere

``transform_matrix`` is the OpenGL/Blender camera-to-world of each view (the harness's
OpenCV camera with its y and z axes negated, :func:`bench.data.blender.flip_camera_yz`).
Rendering has no anti-aliasing, so alpha is 0 or 255 and compositing onto white gives
exactly the white-background render of :func:`bench.data.synth.render`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from bench.data.blender import flip_camera_yz, fov_intrinsics, transforms_file
from bench.data.generated import GeneratedSet, save_png, save_text
from bench.data.synth import OBJECT_RADIUS, object_cameras, object_id, object_mesh, render
from bench.errors import ConfigError

SPLIT = "test"


def _write_object(folder: Path, camera_angle_x: float, cam2world: Tensor, rgb: Tensor, mask: Tensor) -> None:
    """Write one object's views in the Blender layout.

    Args:
        folder: the object's folder.
        camera_angle_x: horizontal field of view in radians.
        cam2world: (V, 4, 4) OpenCV poses; rgb: (V, S, S, 3) in [0, 1]; mask: (V, S, S) bool.
    """
    rgba = torch.cat([rgb * mask[..., None], mask[..., None].float()], dim=-1)
    rgba8 = (rgba * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    gl = flip_camera_yz(cam2world.double())
    frames = []
    for v in range(len(cam2world)):
        save_png(folder / SPLIT / f"r_{v}.png", rgba8[v])
        frames.append({"file_path": f"./{SPLIT}/r_{v}", "transform_matrix": gl[v].tolist()})
    save_text(transforms_file(folder, SPLIT), json.dumps({"camera_angle_x": camera_angle_x, "frames": frames}, indent=4) + "\n")


@dataclass(frozen=True)
class PoseRadiusSet(GeneratedSet):
    """A request for a synthetic Blender-layout set (see the module docstring).

    Attributes:
        objects: number of objects (``car_0000``, ``chair_0001``, ...).
        views: views per object, in ``transforms_test.json``.
        size: image height and width in pixels.
        radius: (low, high) camera distance from the origin, uniform; low must exceed the object radius 0.55.
        fov_deg: horizontal (and vertical) field of view in degrees.
        seed: non-negative seed of the objects and cameras (those of :mod:`bench.data.synth`).
    """

    FORMAT = "nvsbench-synth-blender"
    FORMAT_VERSION = 1

    objects: int = 2
    views: int = 16
    size: int = 64
    radius: tuple[float, float] = (1.0, 7.0)
    fov_deg: float = 70.0
    seed: int = 0

    def __post_init__(self) -> None:
        """Check the parameters (a ``ConfigError`` names the bad one)."""
        self.require_at_least(objects=1, views=1, size=1, seed=0)
        lo, hi = self.radius
        if not OBJECT_RADIUS < lo <= hi:
            raise ConfigError(f"pose-radius set: 'radius' must be (low, high) with {OBJECT_RADIUS} < low <= high, got {self.radius}")
        if not 0 < self.fov_deg < 180:
            raise ConfigError(f"pose-radius set: 'fov_deg' must be in (0, 180), got {self.fov_deg}")

    def write(self, out: Path) -> None:
        fov = math.radians(self.fov_deg)
        K = fov_intrinsics(fov, self.size, self.size)
        for index in range(self.objects):
            _, cam2world = object_cameras(index, self.seed, self.views, self.size, self.radius)
            rgb, _, mask = render(object_mesh(index, self.seed), K.expand(self.views, 3, 3), cam2world, self.size)
            _write_object(out / object_id(index), fov, cam2world, rgb, mask)

