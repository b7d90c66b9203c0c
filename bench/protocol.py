"""Protocols: which (source views -> target views) samples a suite evaluates.

A protocol turns a reader's scenes and view lists into :class:`~bench.types.SampleSpec` s,
in a fixed order (so ``--limit`` and resume are reproducible). View indices refer to a
scene's views sorted by id; negative indices count from the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol as _Protocol

from bench.errors import ConfigError
from bench.types import SampleSpec


class SceneReader(_Protocol):
    def scenes(self) -> list[str]: ...
    def view_ids(self, scene: str) -> list[str]: ...


def _pick(views: list[str], indices: tuple[int, ...], scene: str) -> list[str]:
    try:
        return [views[i] for i in indices]
    except IndexError:
        raise ConfigError(f"scene {scene} has {len(views)} views; protocol asks for view indices {list(indices)}") from None


def _split(reader: SceneReader, sources: tuple[int, ...], targets: tuple[int, ...] | None) -> Iterator[tuple[str, list[str], list[str]]]:
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

    def samples(self, reader: SceneReader) -> Iterator[SampleSpec]:
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

    def samples(self, reader: SceneReader) -> Iterator[SampleSpec]:
        for scene, src, tgt in _split(reader, self.sources, self.targets):
            yield SampleSpec(f"{scene}/{'+'.join(src)}-trajectory", scene, tuple(src), tuple(tgt))
