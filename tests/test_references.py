"""The committed reference checkpoints match their manifest, stay small, load, and beat identity."""

from __future__ import annotations

import json

import pytest

from bench.train.checkpoint import load_checkpoint, sha256_of
from tests.conftest import PROJECT

MANIFEST = json.loads((PROJECT / "checkpoints" / "MANIFEST.json").read_text())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_reference_checkpoint_matches_manifest(name):
    entry = MANIFEST[name]
    path = PROJECT / entry["checkpoint"]
    assert path.stat().st_size <= 10 * 2**20
    assert sha256_of(path) == entry["sha256"]
    state = load_checkpoint(path)
    assert state["step"] == entry["steps"] and state["seed"] == entry["seed"]
    assert state["log"][-1]["loss"] == pytest.approx(entry["final_loss"])
    ours, identity = entry["eval"][name]["psnr"], entry["eval"]["identity"]["psnr"]
    assert ours["n"] == identity["n"] > 0
    assert ours["ci95"][0] > identity["ci95"][1]  # beats identity, CIs apart


@pytest.mark.parametrize("name", sorted(n for n in MANIFEST if "depth_eval" in MANIFEST[n]))
def test_reference_depth_is_scored_and_beats_reprojected_depth(name):
    """A reference that predicts depth is scored with the depth metrics on the depth-pairs stand-in."""
    scores = MANIFEST[name]["depth_eval"]
    ours, oracle = scores[name], scores["oracle_reproject"]
    assert {"abs_rel", "rmse", "delta1"} <= set(ours)
    assert ours["abs_rel"]["n"] > 0 and ours["abs_rel"]["ci95"][1] < oracle["abs_rel"]["ci95"][0]


def test_every_reference_that_predicts_depth_has_a_depth_eval():
    from bench.pipeline import load_pipeline
    from bench.types import BASE_FIELDS

    for name, entry in MANIFEST.items():
        assert ("pred_depth" in load_pipeline(name, BASE_FIELDS).provided) == ("depth_eval" in entry), name


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_reference_pipeline_loads_its_checkpoint(name):
    from bench.pipeline import load_pipeline
    from bench.types import BASE_FIELDS

    pipeline = load_pipeline(name, BASE_FIELDS)
    assert pipeline.checkpoint["sha256"] == MANIFEST[name]["sha256"]
