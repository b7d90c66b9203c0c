"""The benchmark machinery (benchmarks/): what it measures must measure what it says."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT, write_suite

sys.path.insert(0, str(PROJECT / "benchmarks"))

import common  # noqa: E402
import loop  # noqa: E402
import run_all  # noqa: E402


def test_child_peak_memory_and_wall_are_the_childs():
    """A child that touches 300 MiB peaks at 300 MiB more than one that touches nothing; a child's sleep is its wall."""
    touch = "import time; b = bytearray({n} * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep({s})"
    small = common.run_child([sys.executable, "-c", touch.format(n=1, s=0)]).check("small")
    big = common.run_child([sys.executable, "-c", touch.format(n=300, s=0.5)]).check("big")
    assert 290 <= big.peak_mib - small.peak_mib <= 320
    assert 0.5 <= big.seconds < 5
    assert common.run_child([sys.executable, "-c", "raise SystemExit(3)"]).code == 3


def test_hand_written_loop_scores_what_the_harness_scores(cli, tmp_path, objects_root):
    """The overhead baseline must evaluate the same samples to the same values as `nvsbench run` with identity."""
    suite = write_suite(tmp_path, objects_root, pipelines="pipelines: [identity]")
    code, _, err = cli("run", suite, "--out", tmp_path / "out", "--no-progress", "--visuals", "0")
    assert code == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    result = loop.evaluate(objects_root)
    assert result["n"] == summary["n_samples"] == 3 * 5
    for metric, mean in result["means"].items():
        assert mean == pytest.approx(summary["results"]["identity"][metric]["mean"], rel=1e-6)


def test_only_replaces_its_own_section(tmp_path):
    """`--only NAME` rewrites that table and keeps the others, in the order of SECTIONS."""
    first, second = run_all.SECTIONS[0], run_all.SECTIONS[3]
    old = "# Benchmark results\n\nMachine: x.\n\n" + run_all.render(second, common.Table.pairs([("a", "1")]), "_old_") + "\n" + \
        run_all.render(first, common.Table.pairs([("b", "2")]), "_old_")
    merged = run_all.merge(old, {second.name: run_all.render(second, common.Table.pairs([("a", "9")]), "_new_")})
    assert merged.index(f"## {first.title}") < merged.index(f"## {second.title}")
    assert "| b | 2 |" in merged and "| a | 9 |" in merged and "| a | 1 |" not in merged


def test_objects_set_is_generated_once(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "DATA", tmp_path)
    root = common.objects_set(1, 3, size=16)
    stamp = (root / "synth.json").stat().st_mtime_ns
    assert common.objects_set(1, 3, size=16) == root and (root / "synth.json").stat().st_mtime_ns == stamp
    assert len(list(Path(root).rglob("rgb/*.png"))) == 3
