"""Synthetic stand-in for DISN's ShapeNet renderings with depth (read by :mod:`bench.data.disn`).

Car- and chair-like objects of :mod:`bench.data.synth` (even indices cars, odd chairs), scaled to
a radius of 0.45 so that every view frames them whole (DISN re-renders a view until the object
is inside the field of view), rendered with pytorch3d in DISN's easy-variant setting
(``render_blender.py`` of github.com/Xharlie/ShapenetRender_more_variation): view i has yaw
``(i + 1) * 360 / views`` degrees, elevation uniform in [20, 30] degrees, distance ratio uniform
in [0.65, 1] of 1.75, focal length 35 mm on a 32 mm sensor, looking at the object's centre. Unlike
DISN, the yaws have no +-5 degree jitter, so a grid with a step dividing 40 degrees (the default
18 views, 20 degrees apart) has exact +-40 degree pairs: each view has two partners.

Layout written under ``out`` (the subset of DISN's that :class:`~bench.data.disn.DISNReader` reads)::

    synth.json                                                   generator parameters
    image/<category>/<object>/easy/NN.png                        RGBA, transparent (0, 0, 0, 0) background
    {image,depth}/<category>/<object>/easy/rendering_metadata.txt  DISN's metadata lines
    depth/<category>/<object>/easy/NN.png                        RGBA, R = G = B = A = DISN's 8-bit depth code
    filelists/<category>_test.lst                                 every object of the category (split "test")

with ``<category>`` 02958343 (cars) or 03001627 (chairs) and ``<object>`` ``car_0000``,
``chair_0001``, ... Depth uses DISN's encoding, clipping included: surfaces farther than 1.414
are written as 255 (invalid), as in the real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data.disn import CATEGORIES, METADATA, camera_to_world, encode_depth, format_metadata_line, intrinsics, parse_metadata
from bench.data.generated import GeneratedSet, save_png, save_text
from bench.data.synth import OBJECT_RADIUS, object_id, object_mesh, render

FORMAT = "nvsbench-synth-disn"
FORMAT_VERSION = 1
RADIUS = 0.45  # object radius: in view at the nearest distance 0.65 * 1.75 (half field of view 24.6 degrees)
ELEVATION_DEG = (20.0, 30.0)  # render_blender.py, easy: 20 + U(0, 10)
DISTANCE_RATIO = (0.65, 1.0)  # render_blender.py, easy: 0.65 + U(0, 0.35)


def category(index: int) -> str:
    """ShapeNet synset of object ``index``: cars for even, chairs for odd indices (as :func:`bench.data.synth.object_id`)."""
    return CATEGORIES["car"] if index % 2 == 0 else CATEGORIES["chair"]


def metadata(index: int, seed: int, views: int, jitter_deg: float = 0.0) -> str:
    """The ``rendering_metadata.txt`` of object ``index``: yaws on a ``360 / views`` grid plus a uniform
    ±``jitter_deg`` (DISN's easy views: 36 views, ±5°), random elevation and distance."""
    u = np.random.default_rng([seed, index, 2]).random((views, 3))
    elevation = ELEVATION_DEG[0] + (ELEVATION_DEG[1] - ELEVATION_DEG[0]) * u[:, 0]
    ratio = DISTANCE_RATIO[0] + (DISTANCE_RATIO[1] - DISTANCE_RATIO[0]) * u[:, 1]
    yaw = (np.arange(views) + 1) * 360.0 / views + jitter_deg * (2 * u[:, 2] - 1)
    return "".join(format_metadata_line(float(yaw[i]), float(elevation[i]), float(ratio[i])) for i in range(views))


@dataclass(frozen=True)
class DepthPairsSet(GeneratedSet):
    """A request for a synthetic DISN-layout set: ``objects`` alternating car / chair, ``views`` each, ``size`` pixels."""

    FORMAT = FORMAT
    FORMAT_VERSION = FORMAT_VERSION

    objects: int = 4
    views: int = 18
    size: int = 64
    seed: int = 0
    jitter_deg: float = 0.0

    def __post_init__(self) -> None:
        """Check the parameters (a ``ConfigError`` names the bad one)."""
        self.require_at_least(objects=1, views=1, size=1, seed=0)

    def write(self, out: Path) -> None:
        listed: dict[str, list[str]] = {}
        for index in range(self.objects):
            cat, obj = category(index), object_id(index)
            listed.setdefault(cat, []).append(obj)
            image_dir, depth_dir = (out / kind / cat / obj / "easy" for kind in ("image", "depth"))
            text = metadata(index, self.seed, self.views, self.jitter_deg)
            for folder in (image_dir, depth_dir):
                save_text(folder / METADATA, text)
            params = parse_metadata(image_dir / METADATA)
            K = torch.stack([intrinsics(p, self.size, self.size) for p in params])
            cam2world = torch.stack([camera_to_world(p) for p in params])
            mesh = object_mesh(index, self.seed).scale_verts(RADIUS / OBJECT_RADIUS)
            rgb, depth, mask = render(mesh, K, cam2world, self.size)
            alpha = mask.numpy().astype(np.uint8)[..., None] * 255
            rgb8 = (rgb * 255).round().clamp(0, 255).to(torch.uint8).numpy() * (alpha > 0)
            for v in range(self.views):
                save_png(image_dir / f"{v:02d}.png", np.concatenate([rgb8[v], alpha[v]], axis=-1))
                save_png(depth_dir / f"{v:02d}.png", np.repeat(encode_depth(depth[v])[..., None], 4, axis=-1))
        for cat, objs in listed.items():
            save_text(out / "filelists" / f"{cat}_test.lst", "".join(f"{o}\n" for o in objs))
