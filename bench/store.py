"""The results database: one SQLite file per results folder, one row per (sample, metric).

Rows are keyed by a *run key* (hash of the dataset and protocol config, the pipeline
config and the seed), so a rerun of the same command finds what is already scored and
a changed config never mixes with old rows. Tables:

- ``scores(run_key, pipeline, scene, grp, sample, metric, value, stats)``: ``grp`` is the
  sample's group (camera-radius bin) or empty; ``value`` is the
  sample's metric value; ``stats`` (a ``.npy`` blob) holds the rows of statistics of a
  dataset-level metric (mIoU, FID), NULL otherwise
- ``failures(run_key, pipeline, sample, what, error)``: ``what`` is ``predict`` or a metric name
- ``runs(run_key, pipeline, config, updated)``: the pipeline config behind each run key
- ``samples(data_key, sample, scene, n_sources, n_targets, angle_deg, radius)``: geometry of each
  sample (angle between first source and target camera orientations, target camera distance
  from the origin), keyed by the suite's data digest, for plots
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import ConfigError
from bench.metrics.evaluate import Score

SCHEMA_VERSION = 4
SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    run_key TEXT NOT NULL, pipeline TEXT NOT NULL, scene TEXT NOT NULL, grp TEXT NOT NULL, sample TEXT NOT NULL,
    metric TEXT NOT NULL, value REAL, stats BLOB, PRIMARY KEY (run_key, sample, metric));
CREATE TABLE IF NOT EXISTS failures (
    run_key TEXT NOT NULL, pipeline TEXT NOT NULL, sample TEXT NOT NULL, what TEXT NOT NULL,
    error TEXT NOT NULL, PRIMARY KEY (run_key, sample, what));
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY, pipeline TEXT NOT NULL, config TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    data_key TEXT NOT NULL, sample TEXT NOT NULL, scene TEXT NOT NULL, n_sources INTEGER NOT NULL,
    n_targets INTEGER NOT NULL, angle_deg REAL NOT NULL, radius REAL NOT NULL, PRIMARY KEY (data_key, sample));
"""


def _to_blob(stats: np.ndarray | None) -> bytes | None:
    if stats is None:
        return None
    buf = io.BytesIO()
    np.save(buf, stats, allow_pickle=False)
    return buf.getvalue()


def _from_blob(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.load(io.BytesIO(blob), allow_pickle=False)


@dataclass
class StoredScores:
    """One metric's stored results over a set of samples, in sample order."""

    samples: list[str]
    scenes: list[str]
    groups: list[str]
    values: list[float | None]
    stats: list[np.ndarray | None]

    def subset(self, keep: list[bool]) -> StoredScores:
        return StoredScores(*([x for x, k in zip(col, keep) if k] for col in (self.samples, self.scenes, self.groups, self.values, self.stats)))


class Store:
    """Per-sample results in ``<folder>/results.sqlite`` (WAL mode, safe for concurrent writers)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "results.sqlite"
        self.db = sqlite3.connect(self.path, timeout=60.0)
        self.db.execute("PRAGMA busy_timeout=60000")
        self.db.execute("PRAGMA journal_mode=WAL")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        has_tables = self.db.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if has_tables and version != SCHEMA_VERSION:
            self.db.close()
            raise ConfigError(
                f"{self.path} uses results schema v{version}, this nvsbench writes v{SCHEMA_VERSION}: "
                "choose another --out folder or move the old one away"
            )
        self.db.executescript(SCHEMA)
        self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    def register_run(self, run_key: str, pipeline: str, config: dict) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)", (run_key, pipeline, json.dumps(config, sort_keys=True), time.time())
            )

    def covered(self, run_key: str) -> dict[str, set[str]]:
        """``sample -> {metric or 'predict'}`` already scored or failed under ``run_key``."""
        out: dict[str, set[str]] = {}
        for table, col in (("scores", "metric"), ("failures", "what")):
            for sample, what in self.db.execute(f"SELECT sample, {col} FROM {table} WHERE run_key = ?", (run_key,)):
                out.setdefault(sample, set()).add(what)
        return out

    def write(self, run_key: str, pipeline: str, scores: Iterable[Score], failures: Iterable[tuple[str, str, str]]) -> None:
        """Write one batch atomically; ``failures`` are (sample, what, error)."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_key, pipeline, s.scene, s.group, s.sample, s.metric, s.value, _to_blob(s.stats)) for s in scores],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)", [(run_key, pipeline, *f) for f in failures]
            )

    def write_samples(self, data_key: str, rows: Iterable[tuple]) -> None:
        """Record sample geometry rows (see :func:`bench.runner.sample_geometry`)."""
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)", [(data_key, *r) for r in rows])

    def scores(self, run_key: str, metric: str, samples: set[str]) -> StoredScores:
        """Stored results of ``metric`` for those of ``samples`` that have one, ordered by sample."""
        out = StoredScores([], [], [], [], [])
        rows = self.db.execute(
            "SELECT sample, scene, grp, value, stats FROM scores WHERE run_key = ? AND metric = ? ORDER BY sample", (run_key, metric)
        )
        for sample, scene, group, value, blob in rows:
            if sample in samples:
                out.samples.append(sample)
                out.scenes.append(scene)
                out.groups.append(group)
                out.values.append(value)
                out.stats.append(_from_blob(blob))
        return out

    def failures(self, run_key: str, samples: set[str]) -> list[dict[str, str]]:
        rows = self.db.execute("SELECT sample, what, error FROM failures WHERE run_key = ? ORDER BY sample, what", (run_key,))
        return [{"sample": s, "what": w, "error": e} for s, w, e in rows if s in samples]
