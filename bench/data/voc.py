"""Reader for PASCAL VOC 2012 semantic segmentation (and the synthetic sets written in its layout).

Layout under ``root`` (``VOCdevkit/VOC2012``; Everingham & Winn, "The PASCAL Visual Object
Classes Challenge 2012 (VOC2012) Development Kit", sections 2.2 and 2.6)::

    ImageSets/Segmentation/<split>.txt   image ids, one per line (``train``, ``val``, ``trainval``)
    JPEGImages/<id>.jpg                  RGB photo; sizes vary (typically 500 x 375 or 375 x 500)
    SegmentationClass/<id>.png           indexed (palette) PNG of the same size: each pixel's
                                         palette index i is its class ``VOC_CLASSES[i]``
                                         (0 = background, 1..20 the object classes), and
                                         255 = "void" (object outlines and unlabelled regions)

The palette only colours the indices for viewing; the class is the index, never the colour,
so labels are read with :func:`bench.data.io.read_labels`.

Scenes and views: the split is one scene (``val``) whose views are the list's image ids in
file order, so the ``each_view`` protocol gives one sample per image, ``val/2007_000033``.
VOC has no cameras: every view gets a placeholder camera, identity ``cam2world`` and
``K`` with f = max(H, W) and the principal point at the image centre, so pipelines that need
a camera can run; nothing is measured against them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from bench.data.base import Reader
from bench.data.io import inside, read_labels, read_rgb, read_text
from bench.errors import ConfigError
from bench.metrics.segmentation import IGNORE_LABEL, VOC_CLASSES
from bench.types import View


def placeholder_K(height: int, width: int) -> Tensor:
    """(3, 3) stand-in intrinsics of an image without a camera: f = max(H, W), centre ((W-1)/2, (H-1)/2)."""
    f = float(max(height, width))
    return torch.tensor([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


class VOCReader(Reader):
    """PASCAL VOC 2012 segmentation images with their class label maps (see the module docstring).

    Args:
        root: the ``VOC2012`` folder (holding ``JPEGImages``, ``SegmentationClass``, ``ImageSets``).
        split: the list ``ImageSets/Segmentation/<split>.txt`` to read (VOC's benchmark is ``val``).
        size: optional (H, W) to resize every image (bilinear, antialiased) and label map
            (nearest) to; None keeps the native sizes, as the VOC protocol scores them.
    """

    provides = frozenset({"source_seg"})
    classes = VOC_CLASSES

    def __init__(self, root: Path, split: str = "val", size: tuple[int, int] | None = None):
        if size is not None and min(size) < 1:
            raise ConfigError(f"VOC reader: 'size' must be (H, W) with positive entries, got {size}")
        self.root = Path(root)
        self.split = split
        self.size = size
        self._ids: list[str] | None = None

    @property
    def list_file(self) -> Path:
        return self.root / "ImageSets" / "Segmentation" / f"{self.split}.txt"

    def image_path(self, view_id: str) -> Path:
        return self.root / "JPEGImages" / f"{view_id}.jpg"

    def label_path(self, view_id: str) -> Path:
        return self.root / "SegmentationClass" / f"{view_id}.png"

    def _read_ids(self) -> list[str]:
        """Ids of the list file, checked: no duplicates, at least one, each with its image and label."""
        lines = read_text(self.list_file, "VOC image list", " (set the dataset folder with --data-root)").splitlines()
        ids: list[str] = []
        seen: set[str] = set()
        for number, line in enumerate(lines, 1):
            view_id = line.strip()
            if not view_id:
                continue
            if view_id in seen:
                raise ConfigError(f"image id '{view_id}' is listed twice", f"{self.list_file}:{number}")
            for path in (self.image_path(view_id), self.label_path(view_id)):
                inside(self.root, path, f"{self.list_file}:{number}")
            seen.add(view_id)
            ids.append(view_id)
        if not ids:
            raise ConfigError(f"VOC image list is empty: {self.list_file}")
        for view_id in ids:
            for path in (self.image_path(view_id), self.label_path(view_id)):
                if not path.is_file():
                    raise ConfigError(f"file not found: {path} (image '{view_id}' of {self.list_file})")
        return ids

    def scenes(self) -> list[str]:
        """One scene, the split."""
        if self._ids is None:
            self._ids = self._read_ids()
        return [self.split]

    def view_ids(self, scene: str) -> list[str]:
        """Image ids in the list file's order."""
        self.scenes()
        return list(self._ids)

    def pose(self, scene: str, view_id: str) -> Tensor:
        """The placeholder identity ``cam2world`` (4, 4)."""
        return torch.eye(4)

    def load_view(self, scene: str, view_id: str) -> View:
        """Image (3, H, W) and labels (H, W) int64 (255 kept), resized to ``size`` if set."""
        image_path, label_path = self.image_path(view_id), self.label_path(view_id)
        image, seg = read_rgb(image_path), read_labels(label_path)
        if tuple(seg.shape) != tuple(image.shape[-2:]):
            raise ConfigError(f"label map {label_path} is {tuple(seg.shape)} (H, W) but image {image_path} is {tuple(image.shape[-2:])}")
        bad = (seg >= len(VOC_CLASSES)) & (seg != IGNORE_LABEL)
        if bad.any():
            raise ConfigError(f"label map {label_path} holds values {seg[bad].unique().tolist()}, not VOC classes 0..20 or 255")
        if self.size is not None:
            image = torch.nn.functional.interpolate(image[None], size=self.size, mode="bilinear", antialias=True, align_corners=False)
            image = image[0].clamp(0, 1)
            seg = torch.nn.functional.interpolate(seg[None, None].float(), size=self.size, mode="nearest-exact")[0, 0].long()
        h, w = seg.shape
        return View(view_id, image, placeholder_K(h, w), self.pose(scene, view_id), seg=seg)
