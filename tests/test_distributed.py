"""Distributed evaluation (bench/distributed.py): sharding, two torchrun processes against one,
and the shards that killed ranks leave behind."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bench.distributed import SHARDS, shard
from bench.pipeline import StagePipeline
from bench.store import Store
from tests.conftest import write_suite

N_SAMPLES = 3 * 5  # 3 objects x (6 views - 1 source)


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def comparable(s: dict) -> dict:
    """Everything but ``meta`` (wall time, dates, the command, the process count), plus the run keys."""
    return {k: v for k, v in s.items() if k != "meta"} | {"run_keys": s["meta"]["run_keys"]}


def stored(folder: Path) -> dict[str, list]:
    """Every row of the score, failure and sample-geometry tables, in key order."""
    queries = {
        "scores": "SELECT run_key, pipeline, sample, metric, value FROM scores ORDER BY run_key, sample, metric",
        "failures": "SELECT run_key, sample, what, error FROM failures ORDER BY run_key, sample, what",
        "samples": "SELECT data_key, sample, angle_deg, radius FROM samples ORDER BY data_key, sample",
    }
    with sqlite3.connect(folder / "results.sqlite") as db:
        return {table: db.execute(q).fetchall() for table, q in queries.items()}


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_shard_is_contiguous_in_order_with_sizes_differing_by_at_most_one(world_size):
    for n in range(9):
        items = [f"s{i}" for i in range(n)]
        parts = [shard(items, rank, world_size) for rank in range(world_size)]
        assert sum(parts, []) == items
        assert [len(p) for p in parts] == [n // world_size + (rank < n % world_size) for rank in range(world_size)]
    assert shard([["a", "b"], ["c"], ["d", "e"]], 1, 2) == [["d", "e"]]  # batches of ids stay whole


def test_two_torchrun_processes_give_the_numbers_of_one(cli, tmp_path, objects_root, one_thread):
    """A 2-process run resuming a 1-process run stores the very rows, and writes the summary, of one
    uninterrupted 1-process run. pixel_field's network rounds differently for other batch sizes, so
    this holds only because ranks take whole batches of the suite's batch grid."""
    suite = write_suite(tmp_path, objects_root, pipelines="pipelines: [identity, oracle_reproject, pixel_field]")
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert cli("run", suite, "--out", ref, "--no-progress")[0] == 0
    assert cli("run", suite, "--out", out, "--no-progress", "--limit", "4")[0] == 0  # batch [0-3] stored
    # `nvsbench run --launcher torchrun` runs `python -m torch.distributed.run --standalone --nproc-per-node=2 -m bench run ...`
    command = [sys.executable, "-m", "bench", "run", str(suite), "--out", str(out), "--no-progress", "--launcher", "torchrun",
               "--nproc-per-node", "2"]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "torch.distributed.run --standalone --nproc-per-node=2 -m bench run" in proc.stderr
    assert proc.stdout.count("| pipeline") == 1 and "| pixel_field" in proc.stdout  # rank 0 alone prints the table
    for pipe in ("identity", "oracle_reproject", "pixel_field"):  # 11 left: batches [4-7], [8-11] on rank 0, [12-14] on rank 1
        assert f"rank 0/2: {pipe}: 8 of 11 samples" in proc.stderr and f"rank 1/2: {pipe}: 3 of 11 samples" in proc.stderr
    assert summary(out)["meta"]["world_size"] == 2
    assert comparable(summary(out)) == comparable(summary(ref))
    rows = stored(out)
    assert rows == stored(ref) and len(rows["scores"]) == 3 * 3 * N_SAMPLES and len(rows["samples"]) == N_SAMPLES
    assert not (out / SHARDS).exists()


def test_shards_of_killed_ranks_are_merged_once_and_live_ones_left_alone(cli, tmp_path, tiny_suite, monkeypatch):
    crashed = tmp_path / "crashed"
    assert cli("run", tiny_suite, "--pipeline", "identity", "--out", crashed, "--no-progress", "--limit", "4")[0] == 0
    out = tmp_path / "out"
    (out / SHARDS).mkdir(parents=True)
    for job in ("dead", "live"):  # what a rank killed mid-run leaves: its shard and its (unheld) lock file
        shutil.copy(crashed / "results.sqlite", out / SHARDS / f"{job}.rank1.sqlite")
        (out / SHARDS / f"{job}.rank1.lock").touch()
    live = os.open(out / SHARDS / "live.rank1.lock", os.O_RDWR)
    fcntl.flock(live, fcntl.LOCK_EX)  # a rank still running holds its lock
    calls = []
    original = StagePipeline.predict_batch
    monkeypatch.setattr(StagePipeline, "predict_batch", lambda self, s, st: calls.append(len(s)) or original(self, s, st))
    try:
        assert cli("run", tiny_suite, "--pipeline", "identity", "--out", out, "--no-progress")[0] == 0
        assert sum(calls) == N_SAMPLES - 4  # the dead shard's 4 samples were merged, not scored again
        assert sorted(p.name for p in (out / SHARDS).iterdir()) == ["live.rank1.lock", "live.rank1.sqlite"]
    finally:
        os.close(live)
    calls.clear()
    assert cli("run", tiny_suite, "--pipeline", "identity", "--out", out, "--no-progress")[0] == 0
    assert calls == [] and not (out / SHARDS).exists()
    rows = stored(out)
    assert len(rows["scores"]) == len(set(r[:4] for r in rows["scores"])) == 3 * N_SAMPLES  # merged twice over, no duplicates
    store = Store(out)
    store.merge(crashed / "results.sqlite")  # merging again changes nothing
    store.close()
    assert stored(out) == rows
    assert summary(out)["results"]["identity"]["psnr"]["n"] == N_SAMPLES


def test_nproc_per_node_needs_the_launcher(cli, tiny_suite):
    code, _, err = cli("run", tiny_suite, "--nproc-per-node", "2")
    assert code == 2 and "--nproc-per-node needs --launcher torchrun" in err
