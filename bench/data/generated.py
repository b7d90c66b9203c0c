"""What every synthetic stand-in generator shares: atomic file writes and the ``synth.json`` marker.

A generator is a frozen dataclass of its parameters that subclasses :class:`GeneratedSet`
and implements ``write(out)``, laying files out exactly as the real dataset does.
``ensure(out)`` regenerates only when ``out/synth.json`` does not record the same
parameters; ``generate(out)`` refuses to write into a folder it did not create. The marker is
how a stand-in is told from real data wherever it is used (:func:`read_marker`): a run records
it in its summary, and the leaderboard never presents a run on generated data as comparable
with published numbers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from bench.errors import ConfigError

MARKER = "synth.json"


def read_marker(root: Path) -> dict | None:
    """The parameters a generator recorded in ``root/synth.json``; None when there is no marker (data
    nvsbench did not generate), ``{}`` for a marker that cannot be read (still a generated set)."""
    path = Path(root) / MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary name next to ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_png(path: Path, array: np.ndarray, palette: list[int] | None = None) -> None:
    """Write a uint8 (H, W) / (H, W, 3) or uint16 (H, W) array as a PNG (a palette PNG if given one)."""

    def write(tmp: Path) -> None:
        img = Image.fromarray(array)
        if palette is not None:
            img = img.convert("P") if img.mode != "L" else Image.fromarray(array, mode="L").convert("P")
            img.putpalette(palette)
        img.save(tmp, format="PNG")

    write_atomic(path, write)


def save_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    write_atomic(path, lambda tmp: tmp.write_text(text))


@dataclasses.dataclass(frozen=True)
class GeneratedSet:
    """Base of the synthetic dataset generators (see the module docstring)."""

    FORMAT: ClassVar[str] = ""
    FORMAT_VERSION: ClassVar[int] = 1

    def write(self, out: Path) -> None:
        raise NotImplementedError

    def require_at_least(self, **minimums: float) -> None:
        """Raise a ConfigError naming the first parameter below its minimum."""
        for name, low in minimums.items():
            if getattr(self, name) < low:
                raise ConfigError(f"{type(self).__name__}: '{name}' must be at least {low}, got {getattr(self, name)}")

    def params(self) -> dict:
        """The JSON-ready content of ``synth.json`` for this request."""
        fields = json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists
        return {"format": self.FORMAT, "version": self.FORMAT_VERSION, **fields}

    def matches(self, out: Path) -> bool:
        """Whether ``out`` holds a complete set generated for exactly this request."""
        try:
            return json.loads((Path(out) / MARKER).read_text()) == self.params()
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return False

    def ensure(self, out: Path) -> Path:
        """Generate the set into ``out`` unless it is already there; returns ``out``."""
        return Path(out) if self.matches(out) else self.generate(out)

    def generate(self, out: Path) -> Path:
        """Write the set into ``out`` (replacing an earlier generated set); returns ``out``."""
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"synthetic dataset folder is a file: {out}")
        if out.is_dir() and any(out.iterdir()):
            if not (out / MARKER).is_file():
                raise ConfigError(f"refusing to generate into {out}: it is not empty and holds no {MARKER} of an earlier generated set")
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        self.write(out)
        save_text(out / MARKER, json.dumps(self.params(), indent=2) + "\n")  # last: marks completion
        return out
