"""Deterministic synthetic object datasets in the SRN (pixelNeRF) layout, rendered with pytorch3d.

Every object is built from primitives (boxes and cylinders) as a pytorch3d ``Meshes``: even
indices are car-like (body, cabin, four wheels), odd indices chair-like (seat, back, four legs).
Proportions and colours come from a numpy RNG seeded with ``(seed, object index)``. Faces carry
a checker pattern so that a misplaced reprojection visibly changes the colours.

Shading is flat Lambertian under a light fixed in the world (ambient + diffuse, no specular),
baked into per-face colours: a surface point has the same colour in every view, so reprojecting
a source pixel with its depth into a target view must reproduce the target's colour.

Cameras follow :mod:`bench.cameras` (OpenCV ``cam2world``, ``K`` in pixels with pixel centres at
integer coordinates, z-depth); pytorch3d only sees them through :func:`bench.cameras.to_pytorch3d`.

Layout written under ``out``::

    synth.json                       generator parameters (see :meth:`ObjectSet.params`)
    <obj>/intrinsics.txt             SRN: ``f cx cy 0.`` / ``0. 0. 0.`` / ``1.`` / ``H W`` (below)
    <obj>/rgb/NNNNNN.png             8-bit RGB, white background
    <obj>/pose/NNNNNN.txt            4x4 OpenCV cam2world, 16 numbers on one line
    <obj>/depth/NNNNNN.png           16-bit z-depth in millimetres, 0 = background
    <obj>/mask/NNNNNN.png            8-bit, 255 = object, 0 = background

with ``<obj>`` = ``car_0000``, ``chair_0001``, ``car_0002``, ...

``intrinsics.txt`` is written as shapenet_renderer writes SRN's (``blender_interface.py`` of
github.com/vsitzmann/shapenet_renderer): ``%f`` numbers, and the principal point measured from the
image edge, ``cx = cy = S / 2`` (:func:`bench.cameras.from_pixel_edges`); the cameras the images are
rendered with have ``cx = cy = (S - 1) / 2`` in pixel centres, which is where the SRN reader puts them.
``f`` is exact in six decimals when ``S`` is a multiple of 8 (otherwise rounded, as in SRN's files).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from pytorch3d.renderer import MeshRasterizer, RasterizationSettings, TexturesAtlas
from pytorch3d.renderer.mesh.rasterizer import Fragments
from pytorch3d.structures import Meshes
from torch import Tensor

from bench.cameras import look_at, to_pytorch3d
from bench.data.generated import GeneratedSet, save_png, save_text
from bench.data.srn import SYNTH_FORMAT, SYNTH_FORMAT_VERSION
from bench.errors import ConfigError

FOCAL_PER_PIXEL = 131.25 / 128.0  # SRN's focal length of 131.25 px at 128 x 128
ELEVATION_DEG = (5.0, 60.0)  # camera elevation above the horizon
OBJECT_RADIUS = 0.55  # farthest vertex from the origin; keeps objects in frame at distance 1.3
LIGHT_DIR = (0.35, 0.25, 1.0)  # towards the light, world axes (normalised when used)
AMBIENT, DIFFUSE = 0.5, 0.5
CHECKER_CELL = 0.12  # checker cell edge, in build units (object length about 1)
CHECKER_DARK = 0.72  # brightness factor of the darker checker cells
WHEEL_SEGMENTS = 16


class Part(NamedTuple):
    """A triangle mesh with one albedo per face (numpy, build units).

    Attributes:
        verts: (V, 3) float64 vertex positions.
        faces: (F, 3) int64 vertex indices, counter-clockwise seen from outside.
        colours: (F, 3) float64 RGB albedo in [0, 1].
    """

    verts: np.ndarray
    faces: np.ndarray
    colours: np.ndarray


# --------------------------------------------------------------------------- primitives


def _grid(corner: np.ndarray, e1: np.ndarray, e2: np.ndarray, n1: int, n2: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planar rectangle ``corner + s e1 + t e2`` (s, t in [0, 1]) split into ``n1 x n2`` cells.

    Returns:
        verts: ((n1+1)(n2+1), 3), faces: (2 n1 n2, 3) with normal along ``e1 x e2``, and
        parity: (2 n1 n2,) bool, the checker colour of each face's cell.
    """
    s, t = np.meshgrid(np.linspace(0, 1, n1 + 1), np.linspace(0, 1, n2 + 1), indexing="ij")
    verts = corner + s[..., None] * e1 + t[..., None] * e2
    i, j = np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij")
    a = (i * (n2 + 1) + j).ravel()  # cell corners: a=(i,j), b=(i+1,j), c=(i+1,j+1), d=(i,j+1)
    b, c, d = a + n2 + 1, a + n2 + 2, a + 1
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    parity = np.tile(((i + j) % 2 == 0).ravel(), 2)
    return verts.reshape(-1, 3), faces, parity


def _box(lo: tuple[float, float, float], hi: tuple[float, float, float], colour: np.ndarray) -> Part:
    """Axis-aligned box between corners ``lo`` and ``hi`` with a checker of ``colour``."""
    lo_, hi_ = np.asarray(lo, float), np.asarray(hi, float)
    size = hi_ - lo_
    verts, faces, colours = [], [], []
    for axis in range(3):
        u, v = (axis + 1) % 3, (axis + 2) % 3  # (u, v, axis) is a right-handed cycle
        e_u, e_v = np.eye(3)[u] * size[u], np.eye(3)[v] * size[v]
        n_u, n_v = (max(1, math.ceil(size[k] / CHECKER_CELL)) for k in (u, v))
        for high in (False, True):
            corner = lo_ + (np.eye(3)[axis] * size[axis] if high else 0.0)
            # e_u x e_v points along +axis: keep it for the high side, swap for the low side
            g_verts, g_faces, parity = _grid(corner, e_u, e_v, n_u, n_v) if high else _grid(corner, e_v, e_u, n_v, n_u)
            faces.append(g_faces + sum(len(x) for x in verts))
            verts.append(g_verts)
            colours.append(np.where(parity[:, None], 1.0, CHECKER_DARK) * colour)
    return Part(np.concatenate(verts), np.concatenate(faces), np.concatenate(colours))


def _wheel(centre: tuple[float, float, float], radius: float, width: float, tyre: np.ndarray, hub: np.ndarray) -> Part:
    """Cylinder with its axis along world y: striped tread, caps with ``hub``/``tyre`` spokes."""
    n = WHEEL_SEGMENTS
    angle = 2 * math.pi * np.arange(n) / n
    ring = np.stack([radius * np.cos(angle), np.zeros(n), radius * np.sin(angle)], 1)
    half = np.array([0.0, width / 2, 0.0])
    c = np.asarray(centre, float)
    verts = np.concatenate([c - half + ring, c + half + ring, [c - half, c + half]])
    k, k1 = np.arange(n), (np.arange(n) + 1) % n
    near, far = 2 * n, 2 * n + 1  # cap centres at -y and +y
    faces = np.concatenate(
        [
            np.stack([k, k + n, k1 + n], 1),  # tread
            np.stack([k, k1 + n, k1], 1),
            np.stack([np.full(n, near), k, k1], 1),  # -y cap
            np.stack([np.full(n, far), k1 + n, k + n], 1),  # +y cap
        ]
    )
    stripes = np.where((k % 2 == 0)[:, None], 1.0, CHECKER_DARK) * tyre
    spokes = np.where((k % 4 == 0)[:, None], hub, tyre)
    return Part(verts, faces, np.concatenate([stripes, stripes, spokes, spokes]))


def _colour(rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]) -> np.ndarray:
    """(3,) RGB of a random hue with saturation and value drawn uniformly from the given ranges."""
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*saturation), rng.uniform(*value)))


# --------------------------------------------------------------------------- objects


def _car(rng: np.random.Generator) -> list[Part]:
    """Car-like parts: body box, cabin box and four wheels; x is the length, z is up."""
    length, width = rng.uniform(0.9, 1.1), rng.uniform(0.38, 0.5)
    wheel_r, wheel_w = rng.uniform(0.08, 0.12), rng.uniform(0.06, 0.1)
    bottom = wheel_r * rng.uniform(0.5, 0.9)
    top = bottom + rng.uniform(0.16, 0.24)
    cab_len, cab_w, cab_h = length * rng.uniform(0.4, 0.6), width * rng.uniform(0.8, 0.95), rng.uniform(0.1, 0.18)
    cab_x = length * rng.uniform(-0.15, 0.1)
    axles = (length * rng.uniform(0.28, 0.36), -length * rng.uniform(0.28, 0.36))
    body, cabin = _colour(rng, (0.55, 0.9), (0.55, 0.9)), _colour(rng, (0.15, 0.4), (0.7, 0.95))
    tyre, hub = np.full(3, rng.uniform(0.1, 0.2)), np.full(3, rng.uniform(0.6, 0.8))
    wheel_y = width / 2 - 0.3 * wheel_w
    return [
        _box((-length / 2, -width / 2, bottom), (length / 2, width / 2, top), body),
        _box((cab_x - cab_len / 2, -cab_w / 2, top), (cab_x + cab_len / 2, cab_w / 2, top + cab_h), cabin),
        *(_wheel((x, s * wheel_y, wheel_r), wheel_r, wheel_w, tyre, hub) for x in axles for s in (-1, 1)),
    ]


def _chair(rng: np.random.Generator) -> list[Part]:
    """Chair-like parts: seat, back (at +y) and four legs; z is up."""
    seat_x, seat_y = rng.uniform(0.45, 0.6), rng.uniform(0.45, 0.6)
    seat_z, seat_t = rng.uniform(0.4, 0.5), rng.uniform(0.05, 0.09)
    leg, back_t, back_h = rng.uniform(0.04, 0.07), rng.uniform(0.04, 0.07), rng.uniform(0.4, 0.6)
    back_x = seat_x / 2 * rng.uniform(0.85, 1.0)
    wood, legs = _colour(rng, (0.3, 0.8), (0.5, 0.9)), _colour(rng, (0.1, 0.6), (0.2, 0.6))
    top = seat_z + seat_t
    corners = [(sx * (seat_x - leg) / 2, sy * (seat_y - leg) / 2) for sx in (-1, 1) for sy in (-1, 1)]
    return [
        _box((-seat_x / 2, -seat_y / 2, seat_z), (seat_x / 2, seat_y / 2, top), wood),
        _box((-back_x, seat_y / 2 - back_t, top), (back_x, seat_y / 2, top + back_h), wood),
        *(_box((x - leg / 2, y - leg / 2, 0.0), (x + leg / 2, y + leg / 2, seat_z), legs) for x, y in corners),
    ]


def object_id(index: int) -> str:
    """Folder name of object ``index``: ``car_NNNN`` for even, ``chair_NNNN`` for odd indices."""
    return f"{'car' if index % 2 == 0 else 'chair'}_{index:04d}"


def _shade(verts: np.ndarray, faces: np.ndarray, albedo: np.ndarray) -> np.ndarray:
    """(F, 3) flat Lambertian colours: albedo * (ambient + diffuse * max(0, n . light))."""
    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    light = np.asarray(LIGHT_DIR) / np.linalg.norm(LIGHT_DIR)
    return albedo * (AMBIENT + DIFFUSE * np.clip(normal @ light, 0.0, None))[:, None]


def object_parts(index: int, seed: int) -> list[Part]:
    """The parts of object ``index`` in build units: car (body, cabin, 4 wheels) at even indices,
    chair (seat, back, 4 legs) at odd ones. :func:`object_mesh` concatenates their faces in order."""
    rng = np.random.default_rng([seed, index, 0])
    return _car(rng) if index % 2 == 0 else _chair(rng)


def object_mesh(index: int, seed: int) -> Meshes:
    """The shaded mesh of object ``index`` of the set with ``seed`` (a batch of one).

    The object is centred at the origin (bounding-box centre), world up is +z, and its farthest
    vertex is ``OBJECT_RADIUS`` from the origin. Colours are in a ``TexturesAtlas`` of one texel
    per face, with the world-fixed shading already applied.
    """
    parts = object_parts(index, seed)
    offsets = np.cumsum([0] + [len(p.verts) for p in parts[:-1]])
    verts = np.concatenate([p.verts for p in parts])
    faces = np.concatenate([p.faces + o for p, o in zip(parts, offsets, strict=True)])
    verts = verts - (verts.min(0) + verts.max(0)) / 2
    verts *= OBJECT_RADIUS / np.linalg.norm(verts, axis=1).max()
    colours = _shade(verts, faces, np.concatenate([p.colours for p in parts]))
    atlas = torch.from_numpy(colours).float().reshape(1, -1, 1, 1, 3)
    return Meshes(
        verts=[torch.from_numpy(verts).float()],
        faces=[torch.from_numpy(faces)],
        textures=TexturesAtlas(atlas=atlas),
    )


# --------------------------------------------------------------------------- cameras and rendering


def intrinsics(size: int) -> Tensor:
    """(3, 3) ``K`` of a ``size x size`` image: f = 131.25 / 128 * size, cx = cy = (size - 1) / 2."""
    f, c = FOCAL_PER_PIXEL * size, (size - 1) / 2
    return torch.tensor([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])


def object_cameras(index: int, seed: int, views: int, size: int, radius: tuple[float, float]) -> tuple[Tensor, Tensor]:
    """Cameras of object ``index``: on spheres around the origin, looking at it.

    Azimuth is uniform in [0, 360), elevation uniform in ``ELEVATION_DEG``, distance uniform in
    ``radius``. The first k cameras do not depend on ``views`` (for k <= views).

    Returns:
        K: (views, 3, 3) intrinsics in pixels and cam2world: (views, 4, 4) OpenCV, float32.
    """
    u = torch.from_numpy(np.random.default_rng([seed, index, 1]).random((views, 3)))
    azimuth = 2 * math.pi * u[:, 0]
    elevation = torch.deg2rad(ELEVATION_DEG[0] + (ELEVATION_DEG[1] - ELEVATION_DEG[0]) * u[:, 1])
    dist = radius[0] + (radius[1] - radius[0]) * u[:, 2]
    centre = dist[:, None] * torch.stack(
        [elevation.cos() * azimuth.cos(), elevation.cos() * azimuth.sin(), elevation.sin()], dim=-1
    )
    return intrinsics(size).expand(views, 3, 3).clone(), look_at(centre.float())


def orbit_cameras(index: int, seed: int, views: int, size: int, radius: tuple[float, float], step_deg: float
                  ) -> tuple[Tensor, Tensor]:
    """Cameras of object ``index`` along an orbit: view k at azimuth a_0 + k ``step_deg``, elevation
    e_0 + 10° sin(k ``step_deg``), the mid distance of ``radius``; a_0 and e_0 (in ``ELEVATION_DEG``, 10°
    inside each end) are drawn per object. For trajectory suites, whose views follow each other.
    """
    u = np.random.default_rng([seed, index, 2]).random(2)
    k = torch.arange(views, dtype=torch.float64)
    azimuth = torch.deg2rad(360 * u[0] + step_deg * k)
    lo, hi = ELEVATION_DEG[0] + 10, ELEVATION_DEG[1] - 10
    elevation = torch.deg2rad(lo + (hi - lo) * u[1] + 10 * torch.sin(torch.deg2rad(step_deg * k)))
    dist = (radius[0] + radius[1]) / 2
    centre = dist * torch.stack([elevation.cos() * azimuth.cos(), elevation.cos() * azimuth.sin(), elevation.sin()], dim=-1)
    return intrinsics(size).expand(views, 3, 3).clone(), look_at(centre.float())


def rasterize(mesh: Meshes, K: Tensor, cam2world: Tensor, size: int) -> Fragments:
    """Rasterize one mesh into each camera: one face per pixel, no blur, no culling.

    Args:
        mesh: a batch of one mesh.
        K: (B, 3, 3) intrinsics in pixels.
        cam2world: (B, 4, 4) OpenCV camera-to-world.
        size: image height and width in pixels.

    Returns:
        pytorch3d ``Fragments`` with (B, size, size, 1) ``pix_to_face``, ``zbuf`` (z-depth,
        -1 on background) and (B, size, size, 1, 3) ``bary_coords``.
    """
    settings = RasterizationSettings(image_size=(size, size), blur_radius=0.0, faces_per_pixel=1, bin_size=0)
    rasterizer = MeshRasterizer(cameras=to_pytorch3d(K, cam2world, (size, size)), raster_settings=settings)
    return rasterizer(mesh.extend(len(K)))


def render(mesh: Meshes, K: Tensor, cam2world: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Render one shaded mesh into each camera on a white background.

    Args:
        mesh: a batch of one mesh from :func:`object_mesh`.
        K: (B, 3, 3) intrinsics in pixels.
        cam2world: (B, 4, 4) OpenCV camera-to-world.
        size: image height and width in pixels.

    Returns:
        rgb: (B, size, size, 3) float in [0, 1], depth: (B, size, size) z-depth (0 = background),
        mask: (B, size, size) bool.
    """
    fragments = rasterize(mesh, K, cam2world, size)
    mask = fragments.pix_to_face[..., 0] >= 0
    colour = mesh.extend(len(K)).sample_textures(fragments)[..., 0, :]
    rgb = torch.where(mask[..., None], colour, torch.ones_like(colour))
    depth = torch.where(mask, fragments.zbuf[..., 0], torch.zeros_like(fragments.zbuf[..., 0]))
    return rgb, depth, mask


# --------------------------------------------------------------------------- files


def _write_object(folder: Path, K: Tensor, cam2world: Tensor, rgb: Tensor, depth: Tensor, mask: Tensor) -> None:
    """Write one object's views in the SRN layout.

    Args:
        folder: the object's folder.
        K: (3, 3) intrinsics shared by all views, pixel centres at integers (the file measures from the edge: + 0.5).
        cam2world: (V, 4, 4) poses; rgb: (V, S, S, 3) in [0, 1]; depth: (V, S, S); mask: (V, S, S).
    """
    for sub in ("rgb", "pose", "depth", "mask"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    size = rgb.shape[1]
    f, cx, cy = K[0, 0].item(), K[0, 2].item() + 0.5, K[1, 2].item() + 0.5
    save_text(folder / "intrinsics.txt", f"{f:f} {cx:f} {cy:f} 0.\n0. 0. 0.\n1.\n{size} {size}\n")
    rgb8 = (rgb * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    depth_mm = (depth * 1000).round().clamp(0, 65535).numpy().astype(np.uint16)
    mask8 = mask.numpy().astype(np.uint8) * 255
    for v in range(len(cam2world)):
        name = f"{v:06d}"
        save_text(folder / "pose" / f"{name}.txt", " ".join(repr(x) for x in cam2world[v].flatten().tolist()) + "\n")
        save_png(folder / "rgb" / f"{name}.png", rgb8[v])
        save_png(folder / "depth" / f"{name}.png", depth_mm[v])
        save_png(folder / "mask" / f"{name}.png", mask8[v])


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class ObjectSet(GeneratedSet):
    """A request for a synthetic object set (see :func:`generate_objects` for the parameters).

    ``split`` puts the objects in ``<out>/<split>/`` as an SRN download does (``cars_test``).
    """

    FORMAT = SYNTH_FORMAT
    FORMAT_VERSION = SYNTH_FORMAT_VERSION

    objects: int = 8
    views: int = 24
    size: int = 64
    radius: tuple[float, float] = (1.3, 1.6)
    seed: int = 0
    split: str | None = None

    def __post_init__(self) -> None:
        """Check the parameters (a ``ConfigError`` names the bad one)."""
        self.require_at_least(objects=1, views=1, size=1, seed=0)
        lo, hi = self.radius
        if not 0 < lo <= hi:
            raise ConfigError(f"synthetic set: 'radius' must be (low, high) with 0 < low <= high, got {self.radius}")
        if lo <= OBJECT_RADIUS:
            raise ConfigError(f"synthetic set: 'radius' must exceed the object radius {OBJECT_RADIUS}, got {self.radius}")

    def cameras(self, index: int) -> tuple[Tensor, Tensor]:
        """K (V, 3, 3) and cam2world (V, 4, 4) of object ``index``'s views."""
        return object_cameras(index, self.seed, self.views, self.size, self.radius)

    def write(self, out: Path) -> None:
        folder = out / self.split if self.split else out
        for index in range(self.objects):
            mesh = object_mesh(index, self.seed)
            K, cam2world = self.cameras(index)
            rgb, depth, mask = render(mesh, K, cam2world, self.size)
            _write_object(folder / object_id(index), K[0], cam2world, rgb, depth, mask)


@dataclass(frozen=True)
class OrbitObjectSet(ObjectSet):
    """The objects of :class:`ObjectSet`, each seen from cameras along an orbit ``orbit_deg`` apart
    (:func:`orbit_cameras`), in order: the data of trajectory suites (generator ``orbit-objects``)."""

    orbit_deg: float = 30.0

    def cameras(self, index: int) -> tuple[Tensor, Tensor]:
        return orbit_cameras(index, self.seed, self.views, self.size, self.radius, self.orbit_deg)


def generate_objects(
    out: Path,
    objects: int = 8,
    views: int = 24,
    size: int = 64,
    radius: tuple[float, float] = (1.3, 1.6),
    seed: int = 0,
) -> Path:
    """Write a synthetic object set in the SRN layout (see the module docstring) into ``out``.

    Objects alternate car / chair (``car_0000``, ``chair_0001``, ...). Each has ``views`` cameras
    at a distance uniform in ``radius`` (equal bounds: fixed), azimuth uniform in [0, 360) and
    elevation uniform in [5, 60] degrees, looking at the origin with world +z up. Images are
    ``size x size`` with f = 131.25 / 128 * size and cx = cy = (size - 1) / 2 (``size / 2`` in
    ``intrinsics.txt``, which measures from the image edge as SRN's files do). The same
    arguments give byte-identical files. An earlier generated set in ``out`` is replaced; a
    folder holding anything else is refused with a ``ConfigError``.

    Args:
        out: dataset folder (created if missing).
        objects: number of objects.
        views: views per object.
        size: image height and width in pixels.
        radius: (low, high) camera distance from the origin, world units.
        seed: non-negative seed of all random choices.

    Returns:
        ``out``.
    """
    return ObjectSet(objects, views, size, (float(radius[0]), float(radius[1])), seed).generate(out)
