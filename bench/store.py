"""The results database: one SQLite file per results folder, one row per (sample, metric).

Rows are keyed by a *run key* (:func:`bench.runner.plan.run_key`: hash of the data, protocol,
metric options, pipeline config and weights, and seed), so a rerun of the same command finds
what is already scored and a changed config never mixes with old rows. Tables:

- ``scores(run_key, pipeline, scene, sample, metric, value, stats, not_applicable)``: ``value`` is the
  sample's metric value; ``stats`` (a ``.npy`` blob) holds the rows of statistics of a
  dataset-level metric (mIoU, FID), NULL otherwise; ``not_applicable`` is why the sample's ground
  truth cannot score the metric (a target without valid depth), NULL otherwise: such a row
  counts as done for resume and in no statistic
- ``failures(run_key, pipeline, sample, what, error)``: ``what`` is ``load``, ``predict`` or a metric name;
  a sample's failures are those of its last scoring (a rerun that scores it again replaces them)
- ``runs(run_key, pipeline, config, updated)``: the pipeline config behind each run key
- ``samples(data_key, sample, scene, n_sources, n_targets, angle_deg, radius)``: geometry of each
  sample (angle between first source and target camera orientations, target camera distance
  from the origin), keyed by the suite's data digest, for plots

Every table has a primary key and rows go in with ``INSERT OR REPLACE`` (``OR IGNORE`` for
geometry), so a rerun, a resumed crash or a repeated merge of a rank's shard
(:mod:`bench.distributed`) never stores a row twice.
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

SCHEMA_VERSION = 6
DB_NAME = "results.sqlite"
BUSY_TIMEOUT_S = 600.0  # a writer waits this long for another one's transaction (one batch) to commit
SCHEMA = """
CREATE TABLE scores (
    run_key TEXT NOT NULL, pipeline TEXT NOT NULL, scene TEXT NOT NULL, sample TEXT NOT NULL,
    metric TEXT NOT NULL, value REAL, stats BLOB, not_applicable TEXT, PRIMARY KEY (run_key, sample, metric));
CREATE TABLE failures (
    run_key TEXT NOT NULL, pipeline TEXT NOT NULL, sample TEXT NOT NULL, what TEXT NOT NULL,
    error TEXT NOT NULL, PRIMARY KEY (run_key, sample, what));
CREATE TABLE runs (
    run_key TEXT PRIMARY KEY, pipeline TEXT NOT NULL, config TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE samples (
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
    values: list[float | None]
    stats: list[np.ndarray | None]

    def subset(self, keep: list[bool]) -> StoredScores:
        return StoredScores(*([x for x, k in zip(col, keep) if k] for col in (self.samples, self.scenes, self.values, self.stats)))


class Store:
    """Per-sample results in ``<folder>/<name>`` (WAL mode, busy timeout: safe for concurrent writers on one host)."""

    def __init__(self, folder: Path, name: str = DB_NAME):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / name
        self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        try:
            self.db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            self._set_wal()
            # In WAL mode, synchronous=NORMAL skips the fsync at each commit and syncs the WAL only at checkpoints.
            # FULL, the default, waits for one per batch: 0.7 ms here, 1.4-2.8 ms on a loaded machine, against ~4 ms
            # for all the rest of a batch of 8 identity samples at 64x64. A commit stays atomic and durable against a
            # crash or kill of the process (the OS holds the written pages), so each batch is still all-or-nothing;
            # only a power loss or an OS crash can roll back the last committed batches (never corrupt the file), and
            # a rerun scores them again. SQLite docs: "PRAGMA synchronous", "Write-Ahead Logging".
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._ensure_schema()
        except BaseException:
            self.db.close()
            raise

    def _set_wal(self) -> None:
        """Switch the file to WAL. While another connection switches a new file, SQLite answers
        "database is locked" at once, without the busy handler (seen here with 6 threads opening one
        new file), so the switch is retried for up to the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                if self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                    return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
            if time.monotonic() > deadline:
                raise ConfigError(f"{self.path}: cannot switch the results database to WAL mode (locked by another process)")
            time.sleep(0.01)

    def _ensure_schema(self) -> None:
        """Create the tables, or check an existing file's version (and bring a v4 or v5 file to v6), in one write transaction.

        Concurrent first opens of a new file must not see tables without their version
        (``user_version`` is set in the transaction that creates them).
        """
        if self.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            has_tables = self.db.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            if has_tables and version == 4:  # v4 stored each score's radius bin, now found from the samples table
                self.db.execute("ALTER TABLE scores DROP COLUMN grp")
            if has_tables and version in (4, 5):  # v6 records samples whose ground truth cannot score a metric
                self.db.execute("ALTER TABLE scores ADD COLUMN not_applicable TEXT")
            elif has_tables and version != SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path} uses results schema v{version}, this nvsbench writes v{SCHEMA_VERSION}: "
                    "choose another --out folder or move the old one away"
                )
            if not has_tables:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise

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

    def write(
        self, run_key: str, pipeline: str, scores: Iterable[Score], failures: Iterable[tuple[str, str, str]],
        geometry: tuple[str, Iterable[tuple]] | None = None,
    ) -> None:
        """Write one batch in one transaction: a crash keeps all of it or none of it (so a rerun redoes it whole).

        ``failures`` are (sample, what, error); ``geometry`` is ``(data_key, rows)`` for the ``samples`` table.
        Earlier failures of the samples written (a load failure whose file was fixed, say) are replaced by these.
        """
        scores, failures = list(scores), list(failures)
        samples = {s.sample for s in scores} | {f[0] for f in failures}
        with self.db:
            self.db.executemany("DELETE FROM failures WHERE run_key = ? AND sample = ?", [(run_key, s) for s in samples])
            self.db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_key, pipeline, s.scene, s.sample, s.metric, s.value, _to_blob(s.stats), s.not_applicable or None) for s in scores],
            )
            self.db.executemany("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)", [(run_key, pipeline, *f) for f in failures])
            if geometry is not None:
                self._insert_samples(*geometry)

    def write_samples(self, data_key: str, rows: Iterable[tuple]) -> None:
        """Record sample geometry rows (see :func:`bench.runner.execute.sample_geometry`)."""
        with self.db:
            self._insert_samples(data_key, rows)

    def _insert_samples(self, data_key: str, rows: Iterable[tuple]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)", [(data_key, *r) for r in rows])

    def merge(self, other: Path) -> None:
        """Copy every row of another results file (a rank's shard) into this one, in one transaction.

        Idempotent: rows are keyed by the tables' primary keys, so merging the same file again
        (after a crash between a merge and the shard's removal) changes nothing.
        """
        if not other.is_file():
            raise ConfigError(f"no results file to merge at {other}")
        self.db.execute("ATTACH DATABASE ? AS shard", (str(other),))
        try:
            version = self.db.execute("PRAGMA shard.user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise ConfigError(f"{other} uses results schema v{version}, this nvsbench reads v{SCHEMA_VERSION}: move it away")
            with self.db:
                self.db.execute(  # the shard's samples were scored again: their earlier failures go, as in write()
                    "DELETE FROM main.failures WHERE EXISTS (SELECT 1 FROM shard.scores s WHERE s.run_key = failures.run_key "
                    "AND s.sample = failures.sample) OR EXISTS (SELECT 1 FROM shard.failures f WHERE f.run_key = failures.run_key "
                    "AND f.sample = failures.sample)"
                )
                for table, verb in (("scores", "REPLACE"), ("failures", "REPLACE"), ("runs", "REPLACE"), ("samples", "IGNORE")):
                    self.db.execute(f"INSERT OR {verb} INTO main.{table} SELECT * FROM shard.{table}")
        finally:
            self.db.execute("DETACH DATABASE shard")

    def scores(self, run_key: str, metric: str, samples: set[str]) -> StoredScores:
        """Stored results of ``metric`` for those of ``samples`` that have one, ordered by sample."""
        out = StoredScores([], [], [], [])
        rows = self.db.execute(
            "SELECT sample, scene, value, stats FROM scores WHERE run_key = ? AND metric = ? AND not_applicable IS NULL ORDER BY sample",
            (run_key, metric),
        )
        for sample, scene, value, blob in rows:
            if sample in samples:
                out.samples.append(sample)
                out.scenes.append(scene)
                out.values.append(value)
                out.stats.append(_from_blob(blob))
        return out

    def pipelines(self) -> set[str]:
        """Names of the pipelines with runs in this file (under any run key)."""
        return {name for (name,) in self.db.execute("SELECT DISTINCT pipeline FROM runs")}

    def radii(self, data_key: str) -> dict[str, float]:
        """``sample -> radius`` (first target camera's distance from the origin) of the samples of ``data_key``."""
        return dict(self.db.execute("SELECT sample, radius FROM samples WHERE data_key = ?", (data_key,)))

    def not_applicable(self, run_key: str, metric: str, samples: set[str]) -> list[tuple[str, str]]:
        """(sample, why) of those of ``samples`` whose ground truth cannot score ``metric``, ordered by sample."""
        rows = self.db.execute(
            "SELECT sample, not_applicable FROM scores WHERE run_key = ? AND metric = ? AND not_applicable IS NOT NULL ORDER BY sample",
            (run_key, metric),
        )
        return [(s, why) for s, why in rows if s in samples]

    def failures(self, run_key: str, samples: set[str]) -> list[dict[str, str]]:
        rows = self.db.execute("SELECT sample, what, error FROM failures WHERE run_key = ? ORDER BY sample, what", (run_key,))
        return [{"sample": s, "what": w, "error": e} for s, w, e in rows if s in samples]
