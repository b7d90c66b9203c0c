"""The reader contract: one class per on-disk format, registered in :mod:`bench.registry`.

A reader's constructor takes the suite's ``dataset:`` keys (typed, validated from YAML)
and must not touch the disk: :meth:`Reader.scenes` is the first call that does, and a
missing or malformed file is a :class:`~bench.errors.ConfigError` naming its path.
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import chain
from pathlib import Path
from typing import ClassVar

from torch import Tensor

from bench.errors import ConfigError
from bench.types import View

ORTHONORMAL_TOLERANCE = 1e-3  # largest |RᵀR − I| entry accepted in a camera rotation
LAST_ROW = (0.0, 0.0, 0.0, 1.0)  # of a rigid 4x4 transform


class Reader:
    """Scenes and views of one dataset in its native layout, converted to the harness convention.

    Attributes:
        root: the dataset folder the suite (or ``--data-root``) names.
        provides: optional state fields it fills (``source_depth``, ``source_mask``, ``source_seg``).
        near, far: scene depth bounds, available to pipelines.
        background: background colour (RGB in [0, 1]) of object datasets.
        revision: raised when a fix changes what the reader returns for the same files; it is part of
            the suite's data key, so results scored through the old reader are not reused.
    """

    revision: ClassVar[int] = 1
    root: Path
    provides: frozenset[str] = frozenset()
    near: float = 0.1
    far: float = 100.0
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def scenes(self) -> list[str]:
        """Sorted scene ids."""
        raise NotImplementedError

    def view_ids(self, scene: str) -> list[str]:
        """View ids of a scene, in the dataset's order."""
        raise NotImplementedError

    def load_view(self, scene: str, view_id: str) -> View:
        """One view with its camera in the harness convention (:mod:`bench.cameras`)."""
        raise NotImplementedError

    def pose(self, scene: str, view_id: str) -> Tensor:
        """(4, 4) OpenCV cam2world of a view; readers override it when poses are cheaper than images."""
        return self.load_view(scene, view_id).cam2world

    def resize_notes(self) -> list[str]:
        """What resizing on load did to the views loaded so far (:class:`ResizeLog`); readers that resize override it."""
        return []


class ResizeLog:
    """The sizes a reader resized its views from, to one output size, counted; for ``data check`` and a run's meta.

    A resize to another aspect ratio scales x and y differently: the note says by how much, and
    whether the reader's ``K`` carries that per-axis scaling (``scales_K``).
    """

    def __init__(self, what: str, scales_K: bool):
        self.what, self.scales_K = what, scales_K
        self.counts: Counter[tuple[tuple[int, int], tuple[int, int]]] = Counter()

    def add(self, from_size: tuple[int, int], to_size: tuple[int, int]) -> None:
        """Record one view resized from ``from_size`` to ``to_size``, both (H, W)."""
        self.counts[tuple(from_size), tuple(to_size)] += 1

    def notes(self) -> list[str]:
        """One sentence per (from, to) pair, e.g. "256x384 (H x W) frames resized to 208x368: x scaled by 0.9583, y by 0.8125 ..."."""
        out = []
        for ((h0, w0), (h1, w1)), n in sorted(self.counts.items()):
            sx, sy = w1 / w0, h1 / h0
            text = f"{h0}x{w0} (H x W) {self.what} resized to {h1}x{w1} ({n} loaded): x scaled by {sx:.4g}, y by {sy:.4g}"
            if not math.isclose(sx, sy, rel_tol=1e-3):
                text += f", so the aspect ratio W/H changes from {w0 / h0:.4g} to {w1 / h1:.4g}"
            if self.scales_K:
                text += f"; K is built for the output size (fx, cx scaled by {sx:.4g}; fy, cy by {sy:.4g})"
            out.append(text)
        return out


def rotation_defect(rot: Tensor | list[list[float]]) -> tuple[float, float]:
    """(max |RᵀR − I|, det R) of a (3, 3) matrix in float64: a rotation has (0, 1); NaN for both if an entry is not finite.

    ``rot`` is accepted as a rotation when the first is at most :data:`ORTHONORMAL_TOLERANCE`
    and the second is positive (an orthonormal matrix with det -1 is a reflection). Computed on
    Python floats: on a 3x3 matrix, torch or numpy calls cost more than the arithmetic (per view,
    measured inside a run: torch 0.10-0.12 ms, numpy 0.03 ms, Python floats 0.012 ms).
    """
    r = rot.tolist() if isinstance(rot, Tensor) else rot
    if not all(map(math.isfinite, chain.from_iterable(r))):
        return math.nan, math.nan
    cols = list(zip(*r))
    error = max(abs(sum(a * b for a, b in zip(cols[i], cols[j])) - (i == j)) for i in range(3) for j in range(3))
    (a, b, c), (d, e, f), (g, h, k) = r
    return float(error), a * (e * k - f * h) - b * (d * k - f * g) + c * (d * h - e * g)  # det: cofactor expansion along row 0


def is_rotation(rot: Tensor | list[list[float]]) -> bool:
    """Whether a (3, 3) matrix is a rotation within :data:`ORTHONORMAL_TOLERANCE` (see :func:`rotation_defect`)."""
    error, det = rotation_defect(rot)
    return error <= ORTHONORMAL_TOLERANCE and det > 0


def check_view(view: View, where: str) -> None:
    """Raise ConfigError unless the view's camera is a finite rigid transform and its intrinsics are sane.

    Also checks that depth, mask and labels, when present, have the image's (H, W). The matrices are
    checked as Python floats (float64), for the reason given in :func:`rotation_defect`.
    """
    c2w = view.cam2world.tolist()  # (4, 4)
    if not all(map(math.isfinite, chain.from_iterable(c2w))):
        raise ConfigError(f"{where}: camera matrix is not finite: {c2w}")
    rot = [row[:3] for row in c2w[:3]]
    if not is_rotation(rot):
        error, det = rotation_defect(rot)
        raise ConfigError(f"{where}: camera rotation is not orthonormal (max |RᵀR − I| = {error:.3g}, det = {det:.4g})")
    if not all(abs(x - y) <= 1e-8 + 1e-5 * abs(y) for x, y in zip(c2w[3], LAST_ROW)):  # torch.allclose's test and default tolerances
        raise ConfigError(f"{where}: camera matrix's last row is {c2w[3]}, not [0, 0, 0, 1]")
    K = view.K.tolist()  # (3, 3)
    if not all(map(math.isfinite, chain.from_iterable(K))) or K[0][0] <= 0 or K[1][1] <= 0:
        raise ConfigError(f"{where}: intrinsics are not finite with positive focal lengths: {K}")
    for name in ("depth", "mask", "seg"):
        extra = getattr(view, name)
        if extra is not None and tuple(extra.shape) != view.size:
            raise ConfigError(f"{where}: {name} is {tuple(extra.shape)} (H, W), its image is {view.size}")


def check_same_size(sizes: dict[str, tuple[int, int]], what: str, where: str) -> None:
    """Raise ConfigError unless every view of ``sizes`` (view id -> (H, W)) has one size.

    A sample's sources must share one size, and so must its targets: the pipeline receives each group stacked.
    """
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{v} {h}x{w}" for v, (h, w) in sizes.items())
        raise ConfigError(f"{where}: its {what} views differ in size (H x W: {listing}); a sample's {what} views must share one size")
