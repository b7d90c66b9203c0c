"""Protocols: which (source views -> target views) samples a suite evaluates.

A protocol turns a reader's scenes and view lists into :class:`~bench.types.SampleSpec` s,
in a fixed order (so ``--limit`` and resume are reproducible). View indices refer to a
scene's views in the order of its reader's ``view_ids()`` (SRN: sorted file names, DISN: metadata
lines, RealEstate10K: increasing timestamps, Blender: the transforms file's frame order, VOC: the
list file's order); negative indices count from the end.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from bench.data.base import Reader
from bench.data.io import inside
from bench.errors import ConfigError
from bench.types import SampleSpec


def _pick(views: list[str], indices: tuple[int, ...], scene: str) -> list[str]:
    try:
        return [views[i] for i in indices]
    except IndexError:
        raise ConfigError(f"scene {scene} has {len(views)} views; protocol asks for view indices {list(indices)}") from None


def _split(reader: Reader, sources: tuple[int, ...], targets: tuple[int, ...] | None) -> Iterator[tuple[str, list[str], list[str]]]:
    for scene in reader.scenes():
        views = reader.view_ids(scene)
        src = _pick(views, sources, scene)
        tgt = _pick(views, targets, scene) if targets is not None else [v for v in views if v not in src]
        yield scene, src, tgt


class SourceTargets:
    """One sample per target view: predict each target of every scene from the same ``sources``.

    pixelNeRF's SRN protocol is ``sources: [64]`` with every other view a target.
    """

    def __init__(self, sources: tuple[int, ...] = (0,), targets: tuple[int, ...] | None = None):
        self.sources, self.targets = sources, targets

    def samples(self, reader: Reader) -> Iterator[SampleSpec]:
        for scene, src, tgt in _split(reader, self.sources, self.targets):
            for t in tgt:
                yield SampleSpec(f"{scene}/{'+'.join(src)}-{t}", scene, tuple(src), (t,))


class Trajectory:
    """One sample per scene whose targets, in order, are a camera trajectory.

    For methods that generate views one after another (autoregressive or with stochastic
    conditioning) and for consistency metrics over a generated set.
    """

    def __init__(self, sources: tuple[int, ...] = (0,), targets: tuple[int, ...] | None = None):
        self.sources, self.targets = sources, targets

    def samples(self, reader: Reader) -> Iterator[SampleSpec]:
        for scene, src, tgt in _split(reader, self.sources, self.targets):
            yield SampleSpec(f"{scene}/{'+'.join(src)}-trajectory", scene, tuple(src), tuple(tgt))


class Triplets:
    """GeoFree's test triplets (Rombach et al. 2021): each line ``seq,a.png,b.png,c.png`` of the
    triplets file gives four (target | source) samples: b|a, c|a, a|b, a|c.

    The file is ``triplets`` (a path), or ``in_root``, a file name inside the dataset root (a
    generated stand-in writes its own, and ``--data-root`` moves it along). View ids are the
    frame file names without ``.png`` (RE10K timestamps). A sequence or frame the dataset
    lacks is an error naming the file and line.
    """

    def __init__(self, triplets: Path | None = None, in_root: str | None = None):
        if (triplets is None) == (in_root is None):
            raise ConfigError("the triplets protocol takes exactly one of 'triplets' (a path) or 'in_root' (a file in the dataset root)")
        self.triplets, self.in_root = triplets, in_root

    def samples(self, reader: Reader) -> Iterator[SampleSpec]:
        path = inside(reader.root, reader.root / self.in_root, "triplets protocol: in_root") if self.in_root else self.triplets
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            raise ConfigError(f"triplets file not found: {path}") from None
        scenes = set(reader.scenes())
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            fields = [f.strip() for f in line.split(",")]
            where = f"{path}:{number}"
            if len(fields) != 4:
                raise ConfigError(f"expected 'sequence,a.png,b.png,c.png', got {line!r}", where)
            seq, *frames = fields
            if seq not in scenes:
                raise ConfigError(f"sequence '{seq}' is not in the dataset ({reader.root})", where)
            a, b, c = (f.removesuffix(".png") for f in frames)
            known = set(reader.view_ids(seq))
            missing = [f for f in (a, b, c) if f not in known]
            if missing:
                raise ConfigError(f"frame '{missing[0]}.png' of sequence '{seq}' is not in the dataset", where)
            for target, source in ((b, a), (c, a), (a, b), (a, c)):
                yield SampleSpec(f"{seq}/{source}-{target}", seq, (source,), (target,))


class EachView:
    """One sample per view, with that view as both source and target.

    For per-image tasks scored on the input view itself: segmentation heads (VOC) and pose
    estimation (a pipeline's ``poses`` for the view are compared with its camera).
    """

    def samples(self, reader: Reader) -> Iterator[SampleSpec]:
        for scene in reader.scenes():
            for view in reader.view_ids(scene):
                yield SampleSpec(f"{scene}/{view}", scene, (view,), (view,))


def azimuth_deg(cam2world) -> float:
    """Azimuth of a camera centre around the world z axis, in degrees [0, 360)."""
    x, y = float(cam2world[0, 3]), float(cam2world[1, 3])
    return math.degrees(math.atan2(y, x)) % 360.0


class AzimuthPairs:
    """Ordered view pairs of each object whose camera azimuths differ by ``delta_deg``.

    The depth-guided method's test protocol (Hou et al. 2021; ../shared/seeds/001): pairs
    exactly ±40° apart (``exact: true``, within ``tolerance_deg``); with ``exact: false``,
    every pair within ±``delta_deg`` (its training distribution). Azimuth is measured
    around the world z axis from the camera poses.
    """

    def __init__(self, delta_deg: float = 40.0, exact: bool = True, tolerance_deg: float = 0.5):
        self.delta_deg, self.exact, self.tolerance_deg = delta_deg, exact, tolerance_deg

    def _keeps(self, diff: float) -> bool:
        if self.exact:
            return abs(abs(diff) - self.delta_deg) <= self.tolerance_deg
        return 0 < abs(diff) <= self.delta_deg + self.tolerance_deg

    def samples(self, reader: Reader) -> Iterator[SampleSpec]:
        for scene in reader.scenes():
            views = reader.view_ids(scene)
            azimuth = {v: azimuth_deg(reader.pose(scene, v)) for v in views}
            for src in views:
                for tgt in views:
                    diff = (azimuth[tgt] - azimuth[src] + 180.0) % 360.0 - 180.0
                    if src != tgt and self._keeps(diff):
                        yield SampleSpec(f"{scene}/{src}-{tgt}", scene, (src,), (tgt,))


class IndexPairs:
    """Ordered view pairs ``offset`` apart in a scene's view order (wrapping around with ``wrap``).

    For renderings on a nominal azimuth grid with jitter, such as DISN's easy views (36 views
    nominally 10° apart, each with a ±5° random yaw): ``offset: 4`` pairs views nominally ±40°
    apart, the depth-guided method's test setting (../shared/seeds/001), where exact
    azimuth differences (:class:`AzimuthPairs`) would keep only about a tenth of them.
    """

    def __init__(self, offset: int = 4, wrap: bool = True):
        if offset < 1:
            raise ConfigError(f"index_pairs offset must be at least 1, got {offset}")
        self.offset, self.wrap = offset, wrap

    def samples(self, reader: Reader) -> Iterator[SampleSpec]:
        for scene in reader.scenes():
            views = reader.view_ids(scene)
            n = len(views)
            for i, src in enumerate(views):
                for j in (i - self.offset, i + self.offset):
                    if self.wrap and n > 2 * self.offset:
                        j %= n
                    if 0 <= j < n and j != i:
                        yield SampleSpec(f"{scene}/{src}-{views[j]}", scene, (src,), (views[j],))
