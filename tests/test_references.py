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
    if "untrained_eval" in entry:  # it does not beat identity at this budget: it must beat its own initialisation
        untrained = entry["untrained_eval"][name]["psnr"]
        assert not ours["ci95"][0] > identity["ci95"][1] and untrained["n"] == ours["n"]
        assert ours["ci95"][0] > untrained["ci95"][1], "trained no better than untrained"
    else:
        assert ours["ci95"][0] > identity["ci95"][1]  # beats identity, CIs apart


@pytest.mark.parametrize("name", sorted(n for n in MANIFEST if "depth_eval" in MANIFEST[n]))
def test_reference_depth_is_scored_beside_the_true_depth_upper_bound(name):
    """A reference that predicts depth is scored with the depth metrics on the depth-pairs stand-in, next to
    oracle_mesh (the source's true depth, rendered): a full map (coverage 1), and no better than the oracle
    on the pixels the oracle covers. Before depth metrics left holes out, the oracle scored 5x worse."""
    scores = MANIFEST[name]["depth_eval"]
    ours, oracle = scores[name], scores["oracle_mesh"]
    assert {"abs_rel", "rmse", "delta1", "depth_coverage"} <= set(ours)
    assert ours["depth_coverage"]["mean"] == 1.0 and oracle["depth_coverage"]["mean"] < 1.0
    assert ours["abs_rel"]["n"] > 0 and oracle["abs_rel"]["ci95"][1] < ours["abs_rel"]["ci95"][0]


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


def test_the_mesh_oracle_is_an_upper_bound_of_the_references_on_the_pixels_the_source_sees(cli, tmp_path):
    """On the quickstart, oracle_mesh (true source depth, triangulated) beats every shipped learned method on
    psnr_visible, with confidence intervals apart; on plain psnr it need not (it cannot know unseen pixels).
    The generative references sample for minutes here; their manifest evals hold their psnr_visible."""
    out = tmp_path / "out"
    regression = sorted(n for n in MANIFEST if "sampling" not in MANIFEST[n])
    names = ["oracle_mesh", *regression]
    code, _, err = cli("run", PROJECT / "suites" / "quickstart.yaml", *(a for n in names for a in ("--pipeline", n)),
                       "--set", "metrics=[psnr, psnr_visible]", "--limit", "30", "--out", out, "--no-progress", "--visuals", "0")
    assert code == 0, err
    results = json.loads((out / "summary.json").read_text())["results"]
    oracle = results["oracle_mesh"]["psnr_visible"]
    assert oracle["n"] == 30
    for name in regression:
        assert oracle["ci95"][0] > results[name]["psnr_visible"]["ci95"][1], name
