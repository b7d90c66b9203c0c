"""Deterministic synthetic room walk-throughs in the RealEstate10K layout, rendered with pytorch3d.

Each scene is a box room (walls, floor and ceiling) with a few boxes standing along its walls
as furniture, built as a pytorch3d ``Meshes`` of textured rectangles (``TexturesUV``, one
procedural texture per rectangle at ``TEXEL`` metres per texel: noisy painted walls with
darker and lighter panels, wooden floor planks, a plain ceiling, gridded furniture). Shading
is flat Lambertian per rectangle under a light fixed in the world, baked into the texture,
so a surface point has the same colour in every view. World z is up, the floor is z = 0.

The camera walks forwards through the free middle of the room at eye height (1.3 to 1.7 m),
looking 5 to 20 degrees down and panning by up to 25 degrees, as a real-estate video does. Cameras follow
:mod:`bench.cameras` and reach pytorch3d only through :func:`bench.cameras.to_pytorch3d`.

Layout written under ``out`` (the RealEstate10K layout read by :mod:`bench.data.re10k`)::

    synth.json                                generator parameters
    test/<seq>.txt                            URL line, then per frame: timestamp (µs),
                                              fx fy cx cy normalised (corner convention), 0 0,
                                              row-major 3x4 world-to-camera [R | t]
    frames/test/<seq>/<timestamp>.png         8-bit RGB frames
    triplets.txt                              GeoFree's test format, one line per scene:
                                              ``seq,a.png,b.png,c.png``

``<seq>`` is 16 hex digits drawn from ``(seed, scene index)``, like RealEstate10K's clip ids.
Timestamps are those of every ``FRAME_STEP``-th frame of a 29.97 fps video. The triplet of a
scene is its first frame ``a``, ``b`` a third of the way along and ``c`` the last frame, so
``b|a`` is a small and ``c|a`` a large forward move (GeoFree's labels 0 and 1).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from pytorch3d.renderer import MeshRasterizer, RasterizationSettings, TexturesUV
from pytorch3d.structures import Meshes
from torch import Tensor

from bench.cameras import look_at, to_pytorch3d, world_to_camera
from bench.data.generated import GeneratedSet, save_png, save_text
from bench.errors import ConfigError

FORMAT = "nvsbench-synth-re10k"
FORMAT_VERSION = 1
SPLIT = "test"
FOCAL_X = 0.5  # normalised by the width: a 90 degree horizontal field of view
TEXEL = 0.02  # metres per texel of every procedural texture
ROOM_X, ROOM_Y, ROOM_Z = (4.5, 8.0), (4.0, 6.5), (2.4, 3.0)  # room size ranges, metres
FURNITURE_COUNT = (3, 6)  # boxes per room, [low, high)
FURNITURE_DEPTH = 0.9  # farthest a box reaches from its wall (metres)
CLEARANCE = 1.2  # the camera stays this far from the walls, so away from furniture too
EYE_HEIGHT = (1.3, 1.7)
MIN_WALK = 0.8  # shortest distance walked in a clip (metres)
PAN_DEG, PITCH_DEG = 25.0, (-20.0, -5.0)
LIGHT_DIR = (0.3, 0.5, 1.0)  # towards the light, world axes (normalised when used)
AMBIENT, DIFFUSE = 0.6, 0.4
NEAR_CLIP = 0.01  # pytorch3d clips faces at this z, so walls behind the camera stay out
# A pixel centre exactly on an edge shared by two faces is otherwise missed by both (measured:
# 34 empty pixels in 180 frames at 128 x 224); 1e-8 NDC² is 1e-4 NDC, well under a pixel.
SEAM_BLUR = 1e-8
FPS_NUM, FPS_DEN = 30000, 1001  # 29.97 fps
FRAME_STEP = 3  # video frames between camera lines
ATLAS_WIDTH = 1024  # texels; narrower textures share shelves of the atlas
RENDER_CHUNK = 8  # views rasterized at once (each holds a copy of the texture atlas)
URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class Room(NamedTuple):
    """One generated scene.

    Attributes:
        mesh: a batch of one textured mesh (walls, floor, ceiling, furniture).
        half: (half length in x, half width in y), metres; the floor spans [-half, half].
    """

    mesh: Meshes
    half: tuple[float, float]


# --------------------------------------------------------------------------- textures


def _noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """(H, W) smooth value noise in [0, 1]: random values every ``cell`` texels, bicubic in between."""
    h, w = shape
    grid = torch.from_numpy(rng.random((math.ceil(h / cell) + 2, math.ceil(w / cell) + 2)))
    up = torch.nn.functional.interpolate(grid[None, None], scale_factor=cell, mode="bicubic", align_corners=False)[0, 0]
    return up[:h, :w].clamp(0.0, 1.0).numpy()


def _hue(rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]) -> np.ndarray:
    """(3,) RGB of a random hue with saturation and value uniform in the given ranges."""
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*saturation), rng.uniform(*value)))


def _wall(rng: np.random.Generator, shape: tuple[int, int], paint: np.ndarray) -> np.ndarray:
    """Painted wall: ``paint`` with mottling and a few darker or lighter rectangular panels."""
    h, w = shape
    img = paint * (0.85 + 0.15 * _noise(rng, shape, 12.0))[..., None]
    for _ in range(rng.integers(2, 5)):
        ph, pw = max(1, int(h * rng.uniform(0.15, 0.4))), max(1, int(w * rng.uniform(0.08, 0.25)))
        top, left = int(rng.uniform(0.1, 0.9) * (h - ph)), int(rng.uniform(0.0, 1.0) * (w - pw))
        panel = _hue(rng, (0.2, 0.8), (0.2, 0.9)) * (0.7 + 0.3 * _noise(rng, (ph, pw), 5.0))[..., None]
        img[top : top + ph, left : left + pw] = panel
    return img


def _floor(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Wooden floor: planks 0.15 m wide running along the texture's rows, each a shade of one wood colour, dark seams."""
    h, w = shape
    wood = _hue(rng, (0.35, 0.6), (0.45, 0.75)) * np.array([1.0, 0.8, 0.6])
    plank = max(2, int(0.15 / TEXEL))
    rows = np.arange(h) // plank
    shade = rng.uniform(0.75, 1.0, rows.max() + 1)[rows]
    grain = 0.85 + 0.15 * _noise(rng, (h, w), 3.0)
    img = wood * (shade[:, None] * grain)[..., None]
    img[np.arange(h) % plank == 0] *= 0.5
    return img


def _ceiling(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Off-white ceiling with faint mottling."""
    return np.full(3, rng.uniform(0.85, 0.95)) * (0.93 + 0.07 * _noise(rng, shape, 20.0))[..., None]


def _furniture(rng: np.random.Generator, shape: tuple[int, int], colour: np.ndarray) -> np.ndarray:
    """Furniture face: ``colour`` with noise and a darker grid every 0.2 m."""
    h, w = shape
    img = colour * (0.8 + 0.2 * _noise(rng, shape, 4.0))[..., None]
    step = max(2, int(0.2 / TEXEL))
    img[np.arange(h) % step == 0] *= 0.6
    img[:, np.arange(w) % step == 0] *= 0.6
    return img


# --------------------------------------------------------------------------- geometry


class Rectangle(NamedTuple):
    """A textured rectangle ``corner + s e1 + t e2`` (s, t in [0, 1]), metres.

    Attributes:
        corner, e1, e2: (3,); its lit side is the one ``e1 x e2`` points to.
        texture: (H, W, 3) albedo in [0, 1]; columns run along ``e1``, rows along ``e2``.
    """

    corner: np.ndarray
    e1: np.ndarray
    e2: np.ndarray
    texture: np.ndarray


def _shade(rect: Rectangle) -> np.ndarray:
    """The rectangle's texture lit by flat Lambertian shading: ambient + diffuse * max(0, n . light)."""
    normal = np.cross(rect.e1, rect.e2)
    light = np.asarray(LIGHT_DIR) / np.linalg.norm(LIGHT_DIR)
    return np.clip(rect.texture * (AMBIENT + DIFFUSE * max(0.0, float(normal @ light) / np.linalg.norm(normal))), 0.0, 1.0)


def _atlas(textures: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Shelf-pack textures into one image, tallest first: the atlas and each texture's (row, column)."""
    width = max(ATLAS_WIDTH, *(t.shape[1] for t in textures))
    places: list[tuple[int, int]] = [(0, 0)] * len(textures)
    row = col = shelf = 0
    for i in sorted(range(len(textures)), key=lambda i: -textures[i].shape[0]):
        h, w = textures[i].shape[:2]
        if col + w > width:
            row, col, shelf = row + shelf, 0, 0
        places[i], col, shelf = (row, col), col + w, max(shelf, h)
    atlas = np.zeros((row + shelf, width, 3))
    for texture, (r, c) in zip(textures, places):
        atlas[r : r + texture.shape[0], c : c + texture.shape[1]] = texture
    return atlas, places


def _mesh(rects: list[Rectangle]) -> Meshes:
    """One pytorch3d mesh of shaded rectangles (2 faces each) sharing one ``TexturesUV`` atlas.

    ``TexturesUV`` (``align_corners=True``) puts u = 0 / 1 on the centres of the atlas's first /
    last texel column and v = 0 / 1 on its last / first row, so each rectangle's corners map to
    the centres of its texture's corner texels and bilinear sampling never reads a neighbour.
    """
    atlas, places = _atlas([_shade(r) for r in rects])
    height, width = atlas.shape[:2]
    verts, uvs = [], []
    for rect, (row, col) in zip(rects, places):
        h, w = rect.texture.shape[:2]
        for s, t in ((0, 0), (1, 0), (1, 1), (0, 1)):
            verts.append(rect.corner + s * rect.e1 + t * rect.e2)
            uvs.append(((col + s * (w - 1)) / (width - 1), 1.0 - (row + t * (h - 1)) / (height - 1)))
    quad = torch.tensor([[0, 1, 2], [0, 2, 3]])
    faces = torch.cat([quad + 4 * i for i in range(len(rects))])
    textures = TexturesUV([torch.from_numpy(atlas).float()], [faces], [torch.tensor(uvs, dtype=torch.float32)])
    return Meshes([torch.from_numpy(np.stack(verts)).float()], [faces], textures)


def _box_sides(lo: np.ndarray, hi: np.ndarray, inward: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The 6 sides of the box ``lo``..``hi`` as (corner, e1, e2) with ``e1 x e2`` facing out (or in)."""
    size = hi - lo
    sides = []
    for axis in range(3):
        u, v = (axis + 1) % 3, (axis + 2) % 3  # (u, v, axis) is a right-handed cycle
        e_u, e_v = np.eye(3)[u] * size[u], np.eye(3)[v] * size[v]
        for high in (False, True):
            corner = lo + (np.eye(3)[axis] * size[axis] if high else 0.0)
            outward = (e_u, e_v) if high else (e_v, e_u)
            sides.append((corner, *(outward[::-1] if inward else outward)))
    return sides


def _texels(e: np.ndarray) -> int:
    return max(2, math.ceil(float(np.linalg.norm(e)) / TEXEL))


def room(index: int, seed: int) -> Room:
    """Scene ``index`` of the set with ``seed``: a textured box room with furniture along its walls."""
    rng = np.random.default_rng([seed, index, 0])
    half = (rng.uniform(*ROOM_X) / 2, rng.uniform(*ROOM_Y) / 2)
    height = rng.uniform(*ROOM_Z)
    lo, hi = np.array([-half[0], -half[1], 0.0]), np.array([half[0], half[1], height])
    paint = _hue(rng, (0.05, 0.3), (0.7, 0.95))
    rects = []
    for corner, e1, e2 in _box_sides(lo, hi, inward=True):
        shape = (_texels(e2), _texels(e1))
        normal_z = np.cross(e1, e2)[2]
        texture = _floor(rng, shape) if normal_z > 0 else _ceiling(rng, shape) if normal_z < 0 else _wall(rng, shape, paint)
        rects.append(Rectangle(corner, e1, e2, texture))
    for _ in range(rng.integers(*FURNITURE_COUNT)):
        axis, side = rng.integers(2), rng.choice([-1.0, 1.0])  # the wall it stands against
        depth, width, tall = rng.uniform(0.4, FURNITURE_DEPTH), rng.uniform(0.5, 1.5), rng.uniform(0.4, 1.9)
        along = rng.uniform(-half[1 - axis] + width / 2, half[1 - axis] - width / 2)
        gap = rng.uniform(0.0, 0.1)
        box_lo, box_hi = np.zeros(3), np.array([0.0, 0.0, tall])
        wall = side * half[axis]
        box_lo[axis], box_hi[axis] = sorted((wall - side * gap, wall - side * (gap + depth)))
        box_lo[1 - axis], box_hi[1 - axis] = along - width / 2, along + width / 2
        colour = _hue(rng, (0.3, 0.9), (0.3, 0.9))
        for corner, e1, e2 in _box_sides(box_lo, box_hi, inward=False):
            rects.append(Rectangle(corner, e1, e2, _furniture(rng, (_texels(e2), _texels(e1)), colour)))
    return Room(_mesh(rects), half)


def room_cameras(scene: Room, index: int, seed: int, frames: int) -> Tensor:
    """(frames, 4, 4) OpenCV cam2world of a forward walk through the free middle of ``scene``.

    The camera moves in a straight line between two points at least ``MIN_WALK`` apart, at
    least ``CLEARANCE`` from every wall, heading along the walk (± 20 degrees) while panning
    by up to ``PAN_DEG`` and pitching within ``PITCH_DEG``.
    """
    rng = np.random.default_rng([seed, index, 1])
    free = np.array(scene.half) - CLEARANCE
    start, end = rng.uniform(-free, free), rng.uniform(-free, free)
    while np.linalg.norm(end - start) < MIN_WALK:
        end = rng.uniform(-free, free)
    heading = math.atan2(end[1] - start[1], end[0] - start[0]) + math.radians(rng.uniform(-20.0, 20.0))
    pan = math.radians(rng.uniform(-PAN_DEG, PAN_DEG))
    pitch = np.radians(rng.uniform(*PITCH_DEG, size=2))
    eye = rng.uniform(*EYE_HEIGHT)
    s = np.linspace(0.0, 1.0, frames)
    xy = start + s[:, None] * (end - start)
    yaw, tilt = heading + s * pan, pitch[0] + s * (pitch[1] - pitch[0])
    centre = np.concatenate([xy, np.full((frames, 1), eye)], axis=1)
    forward = np.stack([np.cos(tilt) * np.cos(yaw), np.cos(tilt) * np.sin(yaw), np.sin(tilt)], axis=1)
    centre_t = torch.from_numpy(centre).float()
    return look_at(centre_t, centre_t + torch.from_numpy(forward).float())


def intrinsics(size: tuple[int, int]) -> Tensor:
    """(3, 3) ``K`` in pixels for an (H, W) image: 90 degree horizontal field of view, square pixels, centred."""
    h, w = size
    f = FOCAL_X * w
    return torch.tensor([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])


def render(mesh: Meshes, K: Tensor, cam2world: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Render a room into each camera.

    Unlike :func:`bench.data.synth.render` (square images, cameras outside the object), the
    cameras are inside the geometry, so faces are clipped at ``NEAR_CLIP`` (pytorch3d's
    ``z_clip_value``); without it a wall behind the camera projects through the image.

    Args:
        mesh: a batch of one mesh from :func:`room`.
        K: (B, 3, 3) intrinsics in pixels.
        cam2world: (B, 4, 4) OpenCV camera-to-world.
        size: (H, W) in pixels.

    Returns:
        rgb: (B, H, W, 3) in [0, 1] and depth: (B, H, W) z-depth (0 where nothing was hit).
    """
    settings = RasterizationSettings(image_size=size, blur_radius=SEAM_BLUR, faces_per_pixel=1, z_clip_value=NEAR_CLIP)
    rgb, depth = [], []
    for k, c in zip(K.split(RENDER_CHUNK), cam2world.split(RENDER_CHUNK)):
        batch = mesh.extend(len(k))
        fragments = MeshRasterizer(cameras=to_pytorch3d(k, c, size), raster_settings=settings)(batch)
        hit = fragments.pix_to_face[..., 0] >= 0
        rgb.append(torch.where(hit[..., None], batch.sample_textures(fragments)[..., 0, :], torch.zeros(())).clamp(0.0, 1.0))
        depth.append(torch.where(hit, fragments.zbuf[..., 0], torch.zeros(())))
    return torch.cat(rgb), torch.cat(depth)


# --------------------------------------------------------------------------- files


def sequence_id(index: int, seed: int) -> str:
    """16 hex digits naming scene ``index`` (RealEstate10K's clip id format)."""
    return f"{int(np.random.default_rng([seed, index, 2]).integers(0, 2**64, dtype=np.uint64)):016x}"


def timestamps(index: int, seed: int, frames: int) -> list[int]:
    """Microsecond timestamps of every ``FRAME_STEP``-th frame of a 29.97 fps video, from a random start."""
    first = int(np.random.default_rng([seed, index, 3]).integers(300, 3000))
    return [round((first + k * FRAME_STEP) * 1_000_000 * FPS_DEN / FPS_NUM) for k in range(frames)]


def camera_line(timestamp: int, K: Tensor, cam2world: Tensor, size: tuple[int, int]) -> str:
    """One RE10K camera line: ``K`` (3, 3) pixels (integer centres) is normalised in the corner convention."""
    h, w = size
    fx, fy = K[0, 0].item() / w, K[1, 1].item() / h
    cx, cy = (K[0, 2].item() + 0.5) / w, (K[1, 2].item() + 0.5) / h
    r, t = world_to_camera(cam2world.double())
    pose = torch.cat([r, t[:, None]], dim=1).flatten().tolist()
    return " ".join([str(timestamp), *(repr(x) for x in (fx, fy, cx, cy, 0.0, 0.0, *pose))])


def _url(index: int, seed: int) -> str:
    letters = np.random.default_rng([seed, index, 4]).integers(0, len(URL_ALPHABET), 11)
    return "https://www.youtube.com/watch?v=" + "".join(URL_ALPHABET[i] for i in letters)


@dataclass(frozen=True)
class RoomsSet(GeneratedSet):
    """A request for synthetic room walk-throughs in the RealEstate10K layout (module docstring).

    Args:
        scenes: number of rooms (clips).
        frames: camera lines (and frames) per clip, at least 4 so the triplet's gaps grow.
        size: (H, W) of the frames in pixels.
        seed: non-negative seed of every random choice; equal requests give byte-identical files.
    """

    FORMAT = FORMAT
    FORMAT_VERSION = FORMAT_VERSION

    scenes: int = 3
    frames: int = 30
    size: tuple[int, int] = (64, 112)
    seed: int = 0

    def __post_init__(self) -> None:
        """Check the parameters (a ``ConfigError`` names the bad one)."""
        self.require_at_least(scenes=1, frames=4, seed=0)
        if min(self.size) < 8:
            raise ConfigError(f"rooms: 'size' must be (H, W) of at least 8 pixels each, got {self.size}")

    def triplet(self) -> tuple[int, int, int]:
        """Frame indices (a, b, c) of every scene's triplet: first, a third along, last."""
        return 0, (self.frames - 1) // 3, self.frames - 1

    def write(self, out: Path) -> None:
        size = tuple(self.size)
        triplets = []
        for index in range(self.scenes):
            seq, stamps = sequence_id(index, self.seed), timestamps(index, self.seed, self.frames)
            scene = room(index, self.seed)
            cam2world = room_cameras(scene, index, self.seed, self.frames)
            K = intrinsics(size).expand(self.frames, 3, 3)
            rgb, _ = render(scene.mesh, K, cam2world, size)
            lines = [_url(index, self.seed), *(camera_line(s, K[0], c, size) for s, c in zip(stamps, cam2world))]
            save_text(out / SPLIT / f"{seq}.txt", "\n".join(lines) + "\n")
            rgb8 = (rgb * 255).round().to(torch.uint8).numpy()
            for stamp, image in zip(stamps, rgb8):
                save_png(out / "frames" / SPLIT / seq / f"{stamp}.png", image)
            triplets.append(",".join([seq, *(f"{stamps[i]}.png" for i in self.triplet())]))
        save_text(out / "triplets.txt", "\n".join(sorted(triplets)) + "\n")
