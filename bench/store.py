"""The results database: one SQLite file per results folder, one row per (sample, metric).

Rows are keyed by a *run key* (hash of the dataset and protocol config, the pipeline
config and the seed), so a rerun of the same command finds what is already scored and
a changed config never mixes with old rows. Tables:

- ``scores(run_key, pipeline, sample, metric, value)``
- ``failures(run_key, pipeline, sample, what, error)``: ``what`` is ``predict`` or a metric name
- ``runs(run_key, pipeline, config, updated)``: the pipeline config behind each run key
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    run_key TEXT NOT NULL, pipeline TEXT NOT NULL, sample TEXT NOT NULL, metric TEXT NOT NULL,
    value REAL NOT NULL, PRIMARY KEY (run_key, sample, metric));
CREATE TABLE IF NOT EXISTS failures (
    run_key TEXT NOT NULL, pipeline TEXT NOT NULL, sample TEXT NOT NULL, what TEXT NOT NULL,
    error TEXT NOT NULL, PRIMARY KEY (run_key, sample, what));
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY, pipeline TEXT NOT NULL, config TEXT NOT NULL, updated REAL NOT NULL);
"""


class Store:
    """Per-sample results in ``<folder>/results.sqlite`` (WAL mode, safe for concurrent writers)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "results.sqlite"
        self.db = sqlite3.connect(self.path, timeout=60.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=60000")
        self.db.executescript(SCHEMA)

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
        self, run_key: str, pipeline: str, scores: Iterable[tuple[str, str, float]], failures: Iterable[tuple[str, str, str]]
    ) -> None:
        """Write one batch atomically: ``scores`` as (sample, metric, value), ``failures`` as (sample, what, error)."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?)", [(run_key, pipeline, *s) for s in scores]
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)", [(run_key, pipeline, *f) for f in failures]
            )

    def scores(self, run_key: str, samples: set[str]) -> dict[str, dict[str, float]]:
        """``metric -> {sample: value}`` for the given samples."""
        out: dict[str, dict[str, float]] = {}
        rows = self.db.execute("SELECT sample, metric, value FROM scores WHERE run_key = ? ORDER BY sample", (run_key,))
        for sample, metric, value in rows:
            if sample in samples:
                out.setdefault(metric, {})[sample] = value
        return out

    def failures(self, run_key: str, samples: set[str]) -> list[dict[str, str]]:
        rows = self.db.execute("SELECT sample, what, error FROM failures WHERE run_key = ? ORDER BY sample, what", (run_key,))
        return [{"sample": s, "what": w, "error": e} for s, w, e in rows if s in samples]
