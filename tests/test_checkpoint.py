"""Checkpoints: atomic writes, weights-only loading that refuses pickled code, pipeline checks."""

from __future__ import annotations

import pytest
import torch

from bench.errors import ConfigError
from bench.train.checkpoint import load_checkpoint, save_checkpoint


class _Payload:
    """Unpickling this calls ``touch(path)``: what a malicious checkpoint would do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_round_trip(tmp_path):
    path = tmp_path / "a" / "ckpt.pt"
    save_checkpoint(path, {"model": {"w": torch.arange(3.0)}, "step": 7})
    state = load_checkpoint(path)
    assert state["step"] == 7 and torch.equal(state["model"]["w"], torch.arange(3.0))
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temporary file left


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload(marker)}, path)
    with pytest.raises(ConfigError, match="weights_only=True"):
        load_checkpoint(path)
    assert not marker.exists()


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
