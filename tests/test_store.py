"""The results database on its own: a sample's failures are those of its last scoring, and a v4 file is
brought to the current schema with its rows."""

from __future__ import annotations

import sqlite3

from bench.metrics.evaluate import Score
from bench.store import SCHEMA_VERSION, Store

V4_SCORES = """CREATE TABLE scores (
    run_key TEXT NOT NULL, pipeline TEXT NOT NULL, scene TEXT NOT NULL, grp TEXT NOT NULL, sample TEXT NOT NULL,
    metric TEXT NOT NULL, value REAL, stats BLOB, PRIMARY KEY (run_key, sample, metric))"""


def _failures(store: Store) -> list[tuple]:
    return store.db.execute("SELECT run_key, sample, what FROM failures ORDER BY run_key, sample, what").fetchall()


def test_scoring_a_sample_again_replaces_its_failures(tmp_path):
    """A load failure fixed on disk, then a predict failure: only the predict failure is left; scores, too, clear
    earlier failures; other samples and other run keys are untouched."""
    store = Store(tmp_path)
    store.write("k", "p", [], [("s1", "load", "corrupt"), ("s2", "load", "corrupt")])
    store.write("other", "p", [], [("s1", "load", "corrupt")])
    store.write("k", "p", [], [("s1", "predict", "boom")])
    assert _failures(store) == [("k", "s1", "predict"), ("k", "s2", "load"), ("other", "s1", "load")]
    store.write("k", "p", [Score("s2", "scene", "psnr", 20.0)], [("s2", "ssim", "not finite")])
    assert _failures(store) == [("k", "s1", "predict"), ("k", "s2", "ssim"), ("other", "s1", "load")]


def test_a_version_4_file_is_migrated_to_the_current_schema_with_its_rows(tmp_path):
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        db.execute(V4_SCORES)
        db.execute("INSERT INTO scores VALUES ('k', 'p', 'scene', 'near', 's1', 'psnr', 21.5, NULL)")
        db.execute("CREATE TABLE failures (run_key TEXT, pipeline TEXT, sample TEXT, what TEXT, error TEXT)")
        db.execute("PRAGMA user_version = 4")
    store = Store(tmp_path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert [c[1] for c in store.db.execute("PRAGMA table_info(scores)")] == ["run_key", "pipeline", "scene", "sample", "metric", "value", "stats",
                                                                                 "not_applicable"]
    stored = store.scores("k", "psnr", {"s1"})
    assert (stored.samples, stored.values) == (["s1"], [21.5])


def test_not_applicable_rows_count_as_done_but_in_no_statistic(tmp_path):
    store = Store(tmp_path)
    store.write("k", "p", [Score("s1", "scene", "abs_rel", 0.1), Score("s2", "scene", "abs_rel", None, not_applicable="has no valid depth")], [])
    assert store.scores("k", "abs_rel", {"s1", "s2"}).samples == ["s1"]
    assert store.not_applicable("k", "abs_rel", {"s1", "s2"}) == [("s2", "has no valid depth")]
    assert store.covered("k") == {"s1": {"abs_rel"}, "s2": {"abs_rel"}}  # resume does not score it again
