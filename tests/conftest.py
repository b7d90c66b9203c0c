"""Shared fixtures: a tiny synthetic object set and suites that point at it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.cli import main

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def objects_root(tmp_path_factory) -> Path:
    """3 objects x 6 views at 32x32, with depth and masks (SRN layout)."""
    from bench.data.synth import generate_objects

    return generate_objects(tmp_path_factory.mktemp("objs") / "objs", objects=3, views=6, size=32, radius=(1.3, 1.5), seed=0)


def write_adapters(folder: Path, **modules: str) -> Path:
    """A folder for ``--adapters`` holding one ``<name>.py`` per keyword (its source)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (folder / f"{name}.py").write_text(source)
    return folder


def write_suite(folder: Path, root: Path, text: str = "", **replace: str) -> Path:
    """A small suite YAML over ``root``; ``text`` is appended, ``replace`` swaps whole lines by key."""
    lines = {
        "name": "name: tiny",
        "dataset": f"dataset: {{reader: srn, root: {root}, depth: true, mask: true}}",
        "protocol": "protocol: {kind: source_targets, sources: [0]}",
        "metrics": "metrics: [psnr, ssim, l1]",
        "pipelines": "pipelines: [identity, oracle_reproject]",
        "batch_size": "batch_size: 4",
    }
    lines.update(replace)
    path = folder / "suite.yaml"
    path.write_text("\n".join(lines.values()) + "\n" + text)
    return path


@pytest.fixture
def tiny_suite(tmp_path, objects_root) -> Path:
    return write_suite(tmp_path, objects_root)


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``nvsbench ARGS`` in-process; returns (exit code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["nvsbench", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture(autouse=True)
def fresh_registries(monkeypatch):
    """Each test starts with only the built-in registry entries (adapters load per run)."""
    import bench.registry as reg

    monkeypatch.setattr(reg, "REGISTRIES", {k: reg.Registry(k, v) for k, v in reg.BUILTIN.items()})
    monkeypatch.setattr(reg, "_loaded_dirs", set())


@pytest.fixture
def one_thread():
    """Torch on one thread for training tests: two threads competing with other jobs ran far slower here."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
