"""Checkpoint files: written atomically, read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from bench.errors import ConfigError


def save_checkpoint(path: Path, payload: dict) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, mmap: bool = False) -> dict:
    """Read a checkpoint dict with ``weights_only=True``; a one-line ConfigError if it cannot be.

    ``mmap`` maps the tensors' storage from the file instead of reading it (large pretrained
    weights); files in torch's legacy (pre-zip) format are then read normally.

    ``weights_only`` unpickles tensors and plain containers only, so a file that asks to import
    or call anything else (``os.system``, any class's ``__reduce__``) is refused before a line of
    it runs. torch's own message for that spans several lines and suggests retrying with
    ``weights_only=False``; the error here keeps the name of what was refused and never suggests that.
    """
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if not mmap or "mmap" not in str(exc):
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)  # legacy format: no mmap
    except Exception as exc:  # noqa: BLE001 - a bad file fails in many ways (pickle, zip, storage)
        refused = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if refused:
            raise ConfigError(
                f"cannot load checkpoint {path}: it refers to {refused.group(1)}, which is not a tensor or plain container; "
                "refused, since nvsbench loads checkpoints with torch.load(weights_only=True) and never runs code from them"
            ) from None
        why = f"{type(exc).__name__}: {_first_reason(exc)}"
        raise ConfigError(f"cannot load checkpoint {path}: corrupt or not written by torch.save ({why})") from None
    if not isinstance(state, dict):
        raise ConfigError(f"cannot load checkpoint {path}: it holds a {type(state).__name__}, not the dict nvsbench writes")
    return state


def _first_reason(exc: Exception) -> str:
    """The first sentence of torch.load's error, or of its ``WeightsUnpickler error:`` line when it has one."""
    unpickler = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(exc))
    text = unpickler.group(1) if unpickler else str(exc).strip().split("\n")[0]
    return text.split(". ")[0]


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
