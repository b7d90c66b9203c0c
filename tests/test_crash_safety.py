"""Crash safety of the results folder: a run killed with SIGKILL resumes without losing or duplicating
rows, a batch is stored whole or not at all, concurrent runs share one database, and summary.json
is replaced atomically."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.runner.summary import write_json_atomic
from bench.store import Store
from tests.conftest import write_adapters, write_suite
from tests.test_distributed import N_SAMPLES, comparable, stored, summary

SLOW_COPY = '''
import os
import time
from pathlib import Path

from bench.adapter import Adapter
from bench.registry import register_adapter
from bench.types import Prediction


@register_adapter("slow_copy")
class SlowCopy(Adapter):
    """The first source image for every target (like identity), after sleeping $SLOW_COPY_DELAY seconds.

    With $SLOW_COPY_GATE (a folder), ``load`` waits until $SLOW_COPY_PARTIES processes have loaded, so
    their scoring overlaps.
    """

    def load(self, device):
        gate = os.environ.get("SLOW_COPY_GATE")
        if gate:
            (Path(gate) / str(os.getpid())).touch()
            deadline = time.monotonic() + 120
            while len(list(Path(gate).iterdir())) < int(os.environ["SLOW_COPY_PARTIES"]) and time.monotonic() < deadline:
                time.sleep(0.01)

    def predict(self, sample):
        time.sleep(float(os.environ.get("SLOW_COPY_DELAY", "0")))
        src = sample.sources[0].image
        return Prediction(src[None, None].repeat(len(sample.targets), 1, 1, 1, 1))
'''


@pytest.fixture
def adapters(tmp_path) -> Path:
    return write_adapters(tmp_path / "adapters", slow_copy=SLOW_COPY)


def child_env(delay: float, **extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "SLOW_COPY_DELAY": str(delay), **extra}


def scored_samples(out: Path) -> int:
    try:
        with sqlite3.connect(out / "results.sqlite") as db:
            return db.execute("SELECT COUNT(DISTINCT sample) FROM scores").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_run_killed_mid_way_resumes_without_lost_or_duplicated_rows(cli, tmp_path, objects_root, adapters):
    suite = write_suite(tmp_path, objects_root, pipelines="pipelines: [slow_copy]", batch_size="batch_size: 1")
    out, ref = tmp_path / "out", tmp_path / "ref"
    command = [sys.executable, "-m", "bench", "run", str(suite), "--adapters", str(adapters), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(command, env=child_env(0.3), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while scored_samples(out) < 3:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert 3 <= scored_samples(out) < N_SAMPLES  # killed part-way
    assert cli("run", suite, "--adapters", adapters, "--out", out, "--no-progress")[0] == 0
    assert cli("run", suite, "--adapters", adapters, "--out", ref, "--no-progress")[0] == 0
    rows = stored(out)
    assert rows == stored(ref) and len(rows["scores"]) == 3 * N_SAMPLES and len(rows["samples"]) == N_SAMPLES
    with sqlite3.connect(out / "results.sqlite") as db:
        total, distinct = db.execute("SELECT COUNT(*), COUNT(DISTINCT run_key || '|' || sample || '|' || metric) FROM scores").fetchone()
    assert total == distinct
    assert comparable(summary(out)) == comparable(summary(ref))


def test_a_batch_is_stored_whole_or_not_at_all(cli, tiny_suite, tmp_path, monkeypatch):
    """A crash while a batch is written (here: in its sample-geometry rows) leaves none of its rows."""
    out = tmp_path / "out"
    original, writes = Store._insert_samples, []

    def crash_on_second_batch(self, data_key, rows):
        writes.append(data_key)
        if len(writes) == 2:
            raise RuntimeError("killed while writing")
        original(self, data_key, rows)

    monkeypatch.setattr(Store, "_insert_samples", crash_on_second_batch)
    with pytest.raises(RuntimeError, match="killed while writing"):
        cli("run", tiny_suite, "--pipeline", "identity", "--out", out, "--no-progress")
    rows = stored(out)
    assert len(rows["scores"]) == 4 * 3 and len(rows["samples"]) == 4  # the first batch of 4 samples, nothing of the second
    monkeypatch.setattr(Store, "_insert_samples", original)
    assert cli("run", tiny_suite, "--pipeline", "identity", "--out", out, "--no-progress")[0] == 0
    rows = stored(out)
    assert len(rows["scores"]) == 3 * N_SAMPLES and len(rows["samples"]) == N_SAMPLES


def test_two_runs_write_one_database_at_once(tmp_path, objects_root, adapters):
    suite = write_suite(tmp_path, objects_root, batch_size="batch_size: 1")
    out, gate = tmp_path / "out", tmp_path / "gate"
    gate.mkdir()
    env = child_env(0.03, SLOW_COPY_GATE=str(gate), SLOW_COPY_PARTIES="2")  # both score at the same time
    procs = []
    for name in ("slow_a", "slow_b"):
        pipe = tmp_path / f"{name}.yaml"
        pipe.write_text(f"name: {name}\nadapter: slow_copy\n")
        command = [sys.executable, "-m", "bench", "run", str(suite), "--adapters", str(adapters), "--pipeline", str(pipe), "--out", str(out),
                   "--no-progress"]
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    with sqlite3.connect(out / "results.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        counts = dict(db.execute("SELECT pipeline, COUNT(*) FROM scores GROUP BY pipeline"))
        assert db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == N_SAMPLES
    assert counts == {"slow_a": 3 * N_SAMPLES, "slow_b": 3 * N_SAMPLES}
    assert list(summary(out)["results"]) in (["slow_a"], ["slow_b"])  # the run that finished last wrote it


def test_many_connections_creating_one_database_at_once(tmp_path):
    """Six connections opening a new file together: none sees tables without their schema version, none
    fails to switch it to WAL (both happened before the schema went into one transaction)."""
    errors = []
    for trial in range(10):
        folder = tmp_path / str(trial)
        start = threading.Barrier(6)

        def open_store(folder=folder, start=start):
            start.wait()
            try:
                Store(folder).close()
            except Exception as exc:  # noqa: BLE001 - collected and shown by the assertion
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=open_store) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_summary_is_replaced_atomically(tmp_path, monkeypatch):
    """A write that dies part-way (disk full, killed) leaves the previous summary.json whole, and no temporary file."""
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"n": 1})

    def half_then_fail(self, text, *args, **kwargs):
        with open(self, "w") as f:
            f.write(text[: len(text) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(Path, "write_text", half_then_fail)
    with pytest.raises(OSError):
        write_json_atomic(path, {"n": 2, "results": list(range(100))})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
