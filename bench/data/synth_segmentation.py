"""Deterministic synthetic segmentation sets in the PASCAL VOC 2012 layout, rendered with pytorch3d.

Each image shows one object of :mod:`bench.data.synth` (image ``i`` shows object ``i``: even
indices car-like, odd chair-like) in front of a vertical two-colour gradient, seen by that
object's first camera of :func:`bench.data.synth.object_cameras` at a distance in
``DISTANCE``. The classes are the object's parts, each mapped to a VOC class index
(``VOC_CLASSES`` of :mod:`bench.metrics.segmentation`); any mapping would do, these keep
the part's meaning close:

===================  =================  =====================================
object part          VOC class          index
===================  =================  =====================================
car body             car                7
car cabin            bus                6
car wheels (4)       bicycle            2
chair seat           chair              9
chair back           sofa               18
chair legs (4)       diningtable        11
everything else      background         0
===================  =================  =====================================

As in VOC, a band of "void" (255) pixels covers the boundaries between classes: VOC's label
maps mark object outlines (and unlabelled regions) as void, a band a few pixels wide on
~500 px images (VOC2012 devkit, section 2.6; Everingham et al. 2010, "The PASCAL Visual
Object Classes (VOC) Challenge", IJCV 88). Here every pixel within ``void_px`` pixels
(Chebyshev distance) of a pixel of another class is void, so the band is ``2 * void_px``
pixels wide.

Images (H x W) are landscape ``round(0.75 * size) x size`` (VOC's common 375 x 500 shape), and
every third one (index % 3 == 2) portrait ``size x round(0.75 * size)``, so sizes vary as in VOC.
They are cut at a random offset from a ``size x size`` render, so objects are not always
centred and are sometimes truncated.

Layout written under ``out`` (VOC2012 devkit, Everingham & Winn 2012, sections 2.2 and 2.6)::

    synth.json                           generator parameters
    JPEGImages/<id>.jpg                  8-bit RGB JPEG
    SegmentationClass/<id>.png           palette PNG: pixel = class index (0..20, 255 void),
                                         palette = the VOC colour map (:func:`voc_colormap`)
    ImageSets/Segmentation/val.txt       the first ``images`` ids, one per line
    ImageSets/Segmentation/train.txt     the next ``train_images`` ids
    ImageSets/Segmentation/trainval.txt  both

with VOC-style ids ``2007_000000``, ``2007_000001``, ... (``<year>_<6 digits>``). VOC's
``Annotations/`` and ``SegmentationObject/`` are not written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from torch import Tensor

from bench.data import synth
from bench.data.generated import GeneratedSet, save_png, save_text, write_atomic
from bench.metrics.segmentation import IGNORE_LABEL

FORMAT = "nvsbench-synth-voc"
FORMAT_VERSION = 1
ASPECT = 0.75  # short side / long side (VOC's common 500 x 375)
DISTANCE = (1.5, 2.2)  # camera distance; the object (radius 0.55) spans up to the short side (f = 1.025 * size)
JPEG_QUALITY = 90
#: VOC class of each part, in the order :mod:`bench.data.synth` builds them.
CAR_PART_CLASSES = (7, 6, 2, 2, 2, 2)  # body: car, cabin: bus, 4 wheels: bicycle
CHAIR_PART_CLASSES = (9, 18, 11, 11, 11, 11)  # seat: chair, back: sofa, 4 legs: diningtable
#: Every label a generated map can hold.
LABELS = frozenset({0, IGNORE_LABEL, *CAR_PART_CLASSES, *CHAIR_PART_CLASSES})


def voc_colormap(n: int = 256) -> np.ndarray:
    """(n, 3) uint8 RGB colour of each label index in VOC's label PNGs.

    The VOC devkit's ``VOClabelcolormap.m``: the bits of the index are dealt out in turn to
    red, green and blue (bit 0 to red, bit 1 to green, bit 2 to blue, bit 3 to red, ...), each
    channel filling from its most significant bit down. So 1 = (128, 0, 0), 2 = (0, 128, 0),
    15 = (192, 128, 128) and 255 (void) = (224, 224, 192).
    """
    index = np.arange(n)
    cmap = np.zeros((n, 3), dtype=np.int64)
    for level in range(8):  # bit triple `level` of the index sets bit 7 - level of each channel
        for channel in range(3):
            cmap[:, channel] |= ((index >> (3 * level + channel)) & 1) << (7 - level)
    return cmap.astype(np.uint8)


def image_id(index: int) -> str:
    """VOC-style id of image ``index``: ``2007_000000``, ``2007_000001``, ..."""
    return f"2007_{index:06d}"


def image_shape(index: int, size: int) -> tuple[int, int]:
    """(H, W) of image ``index``: landscape, except portrait for every third (index % 3 == 2)."""
    short = round(ASPECT * size)
    return (size, short) if index % 3 == 2 else (short, size)


def face_classes(index: int, seed: int) -> Tensor:
    """(F,) int64 VOC class of each face of ``synth.object_mesh(index, seed)``.

    :func:`bench.data.synth.object_mesh` concatenates the faces of :func:`~bench.data.synth.object_parts` in order.
    """
    parts = synth.object_parts(index, seed)
    classes = CAR_PART_CLASSES if index % 2 == 0 else CHAIR_PART_CLASSES
    if len(parts) != len(classes):
        raise RuntimeError(f"object {index} has {len(parts)} parts, the class table {len(classes)}")
    return torch.cat([torch.full((len(p.faces),), c, dtype=torch.int64) for p, c in zip(parts, classes, strict=True)])


def void_band(labels: np.ndarray, width: int) -> np.ndarray:
    """Labels (H, W) with every pixel within ``width`` px (Chebyshev) of another class set to 255."""
    if width == 0:
        return labels
    window = 2 * width + 1
    edge = ndimage.maximum_filter(labels, size=window, mode="nearest") != ndimage.minimum_filter(labels, size=window, mode="nearest")
    return np.where(edge, IGNORE_LABEL, labels).astype(labels.dtype)


def render_labelled(index: int, seed: int, size: int, void_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index``: (H, W, 3) uint8 RGB and (H, W) uint8 labels, (H, W) from :func:`image_shape`."""
    mesh = synth.object_mesh(index, seed)
    classes = face_classes(index, seed)
    if len(classes) != len(mesh.faces_packed()):
        raise RuntimeError(f"object {index}: {len(classes)} part faces but the mesh has {len(mesh.faces_packed())}")
    K, cam2world = synth.object_cameras(index, seed, 1, size, DISTANCE)
    face = synth.rasterize(mesh, K, cam2world, size).pix_to_face[0, ..., 0]  # (S, S), -1 = background
    hit = face >= 0
    colour = mesh.textures.atlas_packed()[:, 0, 0]  # (F, 3): one shaded texel per face
    rng = np.random.default_rng([seed, index, 2])
    top_bottom = torch.from_numpy(rng.uniform(0.15, 0.95, (2, 3))).float()
    t = torch.linspace(0, 1, size)[:, None, None]
    background = ((1 - t) * top_bottom[0] + t * top_bottom[1]).expand(size, size, 3)
    rgb = torch.where(hit[..., None], colour[face.clamp(min=0)], background)
    labels = torch.where(hit, classes[face.clamp(min=0)], 0)
    h, w = image_shape(index, size)
    top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
    rgb8 = (rgb[top : top + h, left : left + w] * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    return rgb8, void_band(labels[top : top + h, left : left + w].numpy().astype(np.uint8), void_px)


def save_jpeg(path: Path, rgb: np.ndarray) -> None:
    """Write a (H, W, 3) uint8 array as a JPEG of quality ``JPEG_QUALITY``."""
    write_atomic(path, lambda tmp: Image.fromarray(rgb).save(tmp, format="JPEG", quality=JPEG_QUALITY))


@dataclass(frozen=True)
class SegmentationSet(GeneratedSet):
    """A request for a synthetic VOC-layout segmentation set (see the module docstring).

    Attributes:
        images: images in the ``val`` list (the ones the VOC suite scores).
        train_images: further images in the ``train`` list.
        size: long side of every image in pixels (the short side is 0.75 of it).
        void_px: void band half-width in pixels around class boundaries (0: no band).
        seed: non-negative seed of all random choices; the same parameters give the same files.
    """

    FORMAT = FORMAT
    FORMAT_VERSION = FORMAT_VERSION

    images: int = 12
    train_images: int = 4
    size: int = 128
    void_px: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        """Check the parameters (a ``ConfigError`` names the bad one)."""
        self.require_at_least(images=1, train_images=0, size=16, void_px=0, seed=0)

    def write(self, out: Path) -> None:
        ids = [image_id(i) for i in range(self.images + self.train_images)]
        for index, name in enumerate(ids):
            rgb, labels = render_labelled(index, self.seed, self.size, self.void_px)
            save_jpeg(out / "JPEGImages" / f"{name}.jpg", rgb)
            save_png(out / "SegmentationClass" / f"{name}.png", labels, palette=voc_colormap().flatten().tolist())
        lists = out / "ImageSets" / "Segmentation"
        for split, members in (("val", ids[: self.images]), ("train", ids[self.images :]), ("trainval", sorted(ids))):
            save_text(lists / f"{split}.txt", "".join(f"{i}\n" for i in members))
