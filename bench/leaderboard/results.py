"""The leaderboard's inputs from results folders: ``summary.json`` and the per-sample rows of ``results.sqlite``."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bench.errors import ConfigError


@dataclass(frozen=True)
class Point:
    """One stored per-sample score with the geometry of its sample (``samples`` table of :mod:`bench.store`)."""

    pipeline: str
    metric: str
    sample: str
    value: float
    angle_deg: float
    radius: float
    n_targets: int


@dataclass
class Result:
    """One results folder: its ``summary.json``, its per-sample points, and its page slug on the site."""

    folder: Path
    summary: dict
    points: list[Point]
    slug: str = ""

    @property
    def suite(self) -> str:
        return str(self.summary.get("suite", ""))

    @property
    def meta(self) -> dict:
        return self.summary.get("meta", {})

    @property
    def config(self) -> dict:
        return self.meta.get("suite_config", {})

    @property
    def pipelines(self) -> list[str]:
        return list(self.summary.get("results", {}))

    @property
    def metrics(self) -> list[str]:
        """Metric names in the suite's order (then any other found in the results)."""
        names = [str(m) for m in self.config.get("metrics", [])]
        for entries in self.summary.get("results", {}).values():
            names += [m for m in entries if m not in names]
        return names

    def entry(self, pipeline: str, metric: str) -> dict:
        return self.summary["results"].get(pipeline, {}).get(metric, {})

    @property
    def sample_limit(self) -> int | None:
        """The run's ``--limit`` when it may have left samples out: None when unset, or when fewer
        samples than the limit were found (then the run scored every sample)."""
        limit, n = self.meta.get("limit"), self.summary.get("n_samples")
        return None if limit is None or (isinstance(n, int) and n < limit) else int(limit)

    def failed_samples(self, pipeline: str) -> int:
        """Distinct samples with a failure (the summary holds one record per sample and failing step or metric)."""
        return len({f.get("sample") for f in self.summary.get("failures", {}).get(pipeline, [])})


def load_result(folder: Path) -> Result:
    """Read a results folder; a missing or unreadable ``summary.json`` is a ConfigError naming it."""
    path = folder / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no summary.json (is {folder} a results folder of `nvsbench run`?)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the summary: {exc}") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("results"), dict):
        raise ConfigError(f"{path}: not an nvsbench summary (no 'results' mapping)")
    return Result(folder, summary, load_points(folder / "results.sqlite", summary))


def load_points(db_path: Path, summary: dict) -> list[Point]:
    """Per-sample values joined with sample geometry, for every run key of the summary.

    Every sample stored under a run key is used (a folder reused with a larger ``--limit`` may
    hold more samples than the summary counts). Without the database or its ``samples`` table
    (results schema < 4) there are no points, and so no plots.
    """
    meta = summary.get("meta", {})
    pipeline_of = {key: pipe for pipe, key in meta.get("run_keys", {}).items()}
    if not db_path.is_file() or not pipeline_of:
        return []
    db = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"scores", "samples"} <= tables:
            return []
        marks = ",".join("?" * len(pipeline_of))
        rows = db.execute(
            "SELECT s.run_key, s.metric, s.sample, s.value, g.angle_deg, g.radius, g.n_targets FROM scores s "
            f"JOIN samples g ON g.sample = s.sample AND g.data_key = ? WHERE s.value IS NOT NULL AND s.run_key IN ({marks}) "
            "ORDER BY s.sample",
            (meta.get("data_key"), *pipeline_of),
        ).fetchall()
    except sqlite3.Error as exc:
        raise ConfigError(f"{db_path}: cannot read the results database: {exc}") from None
    finally:
        db.close()
    return [Point(pipeline_of[key], metric, sample, value, angle, radius, n) for key, metric, sample, value, angle, radius, n in rows]


def slug(name: str) -> str:
    """A file-name-safe id for a suite or pipeline name: the name itself when it is made of letters,
    digits, '_' and '-', else those characters plus a hash of the name (so distinct names stay distinct)."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:60]
    return safe if safe == name and name else f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
