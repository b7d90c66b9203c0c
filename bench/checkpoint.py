"""Checkpoint files: written atomically, read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from bench.errors import ConfigError


def save_checkpoint(path: Path, payload: dict) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint with ``weights_only=True`` (pickled code is refused); a clear error if unreadable."""
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise ConfigError(f"cannot load checkpoint {path} with weights_only=True: {type(exc).__name__}: {exc}") from None


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
