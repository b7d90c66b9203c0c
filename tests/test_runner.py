"""End-to-end runs on a tiny synthetic set: outputs, resume, failures, protocols and plugins."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image

from bench.pipeline import StagePipeline
from tests.conftest import PROJECT, write_adapters, write_suite

N_SAMPLES = 3 * 5  # 3 objects x (6 views - 1 source)


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def test_run_writes_table_summary_and_database(cli, tiny_suite, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = cli("run", tiny_suite, "--out", out, "--no-progress")
    assert code == 0, err
    assert "| identity" in stdout and "| oracle_reproject" in stdout and "95% CI" in stdout
    s = _summary(out)
    assert s["suite"] == "tiny" and s["n_samples"] == N_SAMPLES
    for pipe in ("identity", "oracle_reproject"):
        for metric, higher in (("psnr", True), ("ssim", True), ("l1", False)):
            m = s["results"][pipe][metric]
            assert m["n"] == N_SAMPLES and m["higher_is_better"] is higher
            assert m["ci95"][0] <= m["mean"] <= m["ci95"][1]
        assert s["failures"][pipe] == []
    meta = s["meta"]
    assert {"git_commit", "config_hashes", "seed", "packages", "device", "wall_time_s"} <= set(meta)
    assert meta["packages"]["torch"].startswith("2.12")
    with sqlite3.connect(out / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 2 * 3 * N_SAMPLES
        psnr = [v for (v,) in db.execute("SELECT value FROM scores WHERE pipeline='identity' AND metric='psnr'")]
    assert sum(psnr) / len(psnr) == pytest.approx(s["results"]["identity"]["psnr"]["mean"])


def test_oracle_beats_identity(cli, tiny_suite, tmp_path):
    """The check that the camera conventions of reader, lift and renderer agree."""
    cli("run", tiny_suite, "--out", tmp_path / "out", "--no-progress")
    r = _summary(tmp_path / "out")["results"]
    assert r["oracle_reproject"]["psnr"]["mean"] > r["identity"]["psnr"]["mean"] + 1.5
    assert r["oracle_reproject"]["l1"]["mean"] < r["identity"]["l1"]["mean"]


def test_oracle_is_exact_where_the_source_sees_the_target(tiny_suite):
    """Pixels whose reprojected depth matches the target's depth get the target's colour exactly."""
    from bench.pipeline import load_pipeline
    from bench.runner.plan import SampleLoader, collate
    from bench.suite import load_suite

    suite = load_suite(tiny_suite)
    loader = SampleLoader(suite.reader)
    samples = [loader.load(s) for s in suite.protocol.samples(suite.reader)]
    preds = load_pipeline("oracle_reproject", suite.available_fields).predict_batch(samples, collate(samples, suite, 0, "cpu"))
    errors, covered = [], 0
    for sample, pred in zip(samples, preds):
        target = sample.targets[0]
        same_surface = (pred.depth[0, 0] > 0) & (target.depth > 0) & ((pred.depth[0, 0] - target.depth).abs() < 0.01)
        covered += int(same_surface.sum())
        errors.append((pred.image[0, 0] - target.image).abs().amax(0)[same_surface])
    errors = torch.cat(errors)
    assert covered > 500
    # exact on most pixels; the rest sit on checker edges, where source and target pixel
    # centres fall on different sides of a colour boundary at this 32 px resolution
    assert errors.median() < 1e-6 and (errors < 0.02).float().mean() > 0.7


def test_rerun_resumes_and_computes_nothing(cli, tiny_suite, tmp_path, monkeypatch):
    calls = []
    original = StagePipeline.predict_batch
    monkeypatch.setattr(StagePipeline, "predict_batch", lambda self, s, st: calls.append(len(s)) or original(self, s, st))
    out = tmp_path / "out"
    cli("run", tiny_suite, "--out", out, "--limit", "6", "--no-progress")
    assert sum(calls) == 2 * 6
    first = _summary(out)["results"]
    calls.clear()
    cli("run", tiny_suite, "--out", out, "--no-progress")
    assert sum(calls) == 2 * (N_SAMPLES - 6)  # only what the limited run did not score
    full = _summary(out)["results"]
    calls.clear()
    code, _, err = cli("run", tiny_suite, "--out", out, "--no-progress")
    assert code == 0, err
    assert calls == []
    assert _summary(out)["results"] == full
    assert full["identity"]["psnr"]["n"] == N_SAMPLES and first["identity"]["psnr"]["n"] == 6
    calls.clear()
    cli("run", tiny_suite, "--out", out, "--no-progress", "--set", "pipeline.oracle_reproject.stages.1.radius_px=1.0")
    assert sum(calls) == N_SAMPLES  # a changed pipeline config is a new run; identity is untouched


def test_a_summary_of_some_pipelines_says_which_it_leaves_out(cli, tiny_suite, tmp_path):
    out = tmp_path / "out"
    code, stdout, _ = cli("run", tiny_suite, "--out", out, "--no-progress", "--limit", "2")
    assert code == 0 and "note:" not in stdout and _summary(out)["meta"]["not_summarized"] == []
    code, stdout, _ = cli("run", tiny_suite, "--out", out, "--no-progress", "--limit", "2", "--pipeline", "identity")
    assert code == 0 and list(_summary(out)["results"]) == ["identity"]
    assert _summary(out)["meta"]["not_summarized"] == ["oracle_reproject"] and "also holds runs of oracle_reproject" in stdout


def test_same_seed_same_numbers(cli, tiny_suite, tmp_path):
    for name in ("a", "b"):
        cli("run", tiny_suite, "--out", tmp_path / name, "--no-progress", "--seed", "3")
    assert _summary(tmp_path / "a")["results"] == _summary(tmp_path / "b")["results"]


ADAPTERS = '''
import torch
from bench.adapter import Adapter
from bench.registry import register_adapter
from bench.types import Prediction


@register_adapter("flaky")
class Flaky(Adapter):
    """Fails on view 000002, returns NaN for view 000003, otherwise a grey image with 3 draws."""

    def __init__(self, grey: float = 0.5):
        self.grey = grey

    def predict(self, sample):
        t = sample.targets[0]
        if t.id == "000002":
            raise RuntimeError("boom on purpose")
        img = torch.full((len(sample.targets), 3, 3, *t.size), self.grey)
        if t.id == "000003":
            img[0, 0, 0, 0, 0] = float("nan")
        return Prediction(img)
'''


@pytest.fixture
def adapter_dir(tmp_path) -> Path:
    return write_adapters(tmp_path / "my_adapters", flaky=ADAPTERS)


def test_adapter_failures_are_recorded_and_the_run_goes_on(cli, tiny_suite, tmp_path, adapter_dir):
    out = tmp_path / "out"
    code, stdout, err = cli("run", tiny_suite, "--adapters", adapter_dir, "--pipeline", "flaky", "--out", out, "--no-progress")
    assert code == 0, err
    s = _summary(out)
    errors = {f["sample"]: f["error"] for f in s["failures"]["flaky"]}
    assert len(errors) == 2 * 3  # views 2 and 3 of each of the 3 objects
    assert all("boom on purpose" in e for k, e in errors.items() if k.endswith("-000002"))
    assert all("NaN" in e for k, e in errors.items() if k.endswith("-000003"))
    assert s["results"]["flaky"]["psnr"]["n"] == N_SAMPLES - 6
    code, stdout, _ = cli("list", "adapters", "--adapters", adapter_dir)
    assert "flaky" in stdout and "flaky.py" in stdout


NOISY_ADAPTER = '''
import random

import numpy as np
import torch
from bench.adapter import Adapter
from bench.registry import register_adapter
from bench.types import Prediction


@register_adapter("noisy")
class Noisy(Adapter):
    """A stochastic method drawing from the global generators of torch, numpy and random."""

    def predict(self, sample):
        t = sample.targets[0]
        img = 0.5 * torch.rand(len(sample.targets), 1, 3, *t.size) + 0.25 * float(np.random.rand()) + 0.25 * random.random()
        return Prediction(img)
'''


def test_a_stochastic_adapter_scores_a_sample_the_same_whatever_was_scored_before(cli, tiny_suite, tmp_path):
    """The global generators are seeded per sample: a run resumed after 5 samples stores the values of one run."""
    adapters = write_adapters(tmp_path / "adapters", noisy=NOISY_ADAPTER)
    run = ("run", tiny_suite, "--adapters", adapters, "--pipeline", "noisy", "--no-progress")
    assert cli(*run, "--out", tmp_path / "whole")[0] == 0
    assert cli(*run, "--out", tmp_path / "resumed", "--limit", "5")[0] == 0
    assert cli(*run, "--out", tmp_path / "resumed")[0] == 0

    def values(out: Path) -> dict:
        with sqlite3.connect(out / "results.sqlite") as db:
            return {(s, m): v for s, m, v in db.execute("SELECT sample, metric, value FROM scores")}

    whole = values(tmp_path / "whole")
    assert len(whole) == 3 * N_SAMPLES and values(tmp_path / "resumed") == whole
    assert len({v for (_, m), v in whole.items() if m == "l1"}) == N_SAMPLES  # draws differ between samples
    assert cli(*run, "--out", tmp_path / "other_seed", "--seed", "1")[0] == 0
    assert values(tmp_path / "other_seed") != whole


WEIGHTED_ADAPTER = '''
import torch
from bench.adapter import Adapter
from bench.registry import register_adapter
from bench.types import Prediction


@register_adapter("weighted")
class Weighted(Adapter):
    """Predicts a grey level read from its checkpoint file."""

    def load(self, device):
        self.grey = float(self.checkpoint.read_text())

    def predict(self, sample):
        return Prediction(torch.full((len(sample.targets), 1, 3, *sample.targets[0].size), self.grey))
'''


def test_an_adapter_checkpoint_is_loaded_and_keys_its_results(cli, tiny_suite, tmp_path):
    """The YAML's checkpoint: reaches the adapter, is recorded, and other weights are scored again, not reused."""
    adapters = write_adapters(tmp_path / "adapters", weighted=WEIGHTED_ADAPTER)
    weights, pipe = tmp_path / "grey.txt", tmp_path / "weighted.yaml"
    pipe.write_text(f"name: weighted\nadapter: weighted\ncheckpoint: {weights}\n")
    run = ("run", tiny_suite, "--adapters", adapters, "--pipeline", pipe, "--out", tmp_path / "out", "--no-progress")
    code, _, err = cli(*run)
    assert code == 2 and f"checkpoint not found: {weights}" in err
    means = []
    for grey in ("0.2", "0.6"):
        weights.write_text(grey)
        assert cli(*run)[0] == 0
        summary = _summary(tmp_path / "out")
        means.append(summary["results"]["weighted"]["l1"]["mean"])
        assert summary["meta"]["checkpoints"]["weighted"]["path"] == str(weights)
    assert means[0] != means[1]


def test_adapter_from_pipeline_yaml_with_typed_params(cli, tiny_suite, tmp_path, adapter_dir):
    pipe = tmp_path / "grey.yaml"
    pipe.write_text("name: grey\nadapter: flaky\nparams: {grey: white}\n")
    code, _, err = cli("run", tiny_suite, "--adapters", adapter_dir, "--pipeline", pipe, "--no-progress")
    assert code == 2 and f"{pipe}:3: expected float, got str 'white'" in err


def test_nonfinite_metric_is_a_failure_not_averaged(cli, tmp_path, objects_root):
    """Predicting a view from itself gives psnr = inf: recorded as a failure, other metrics kept."""
    suite = write_suite(tmp_path, objects_root, protocol="protocol: {kind: source_targets, sources: [0], targets: [0, 1]}")
    cli("run", suite, "--pipeline", "identity", "--out", tmp_path / "out", "--no-progress")
    s = _summary(tmp_path / "out")
    assert s["results"]["identity"]["psnr"]["n"] == 3 and s["results"]["identity"]["l1"]["n"] == 6
    assert sum("psnr is not finite" in f["error"] for f in s["failures"]["identity"]) == 3


def test_trajectory_protocol_with_draws(cli, tmp_path, objects_root, adapter_dir):
    suite = write_suite(tmp_path, objects_root, protocol="protocol: {kind: trajectory, sources: [0], targets: [1, 4, 5]}")
    out = tmp_path / "out"
    pipes = ("--pipeline", "flaky", "--pipeline", "oracle_reproject")
    code, _, err = cli("run", suite, "--adapters", adapter_dir, *pipes, "--out", out, "--no-progress")
    assert code == 0, err
    s = _summary(out)
    assert s["n_samples"] == 3
    assert s["results"]["flaky"]["l1"]["n"] == 3 and s["results"]["oracle_reproject"]["psnr"]["n"] == 3


def test_adapter_from_entry_point(cli, tiny_suite, tmp_path, monkeypatch):
    """Installed plugins register through the entry-point group nvsbench.adapters."""
    site = tmp_path / "site"
    (site / "grey_plugin").mkdir(parents=True)
    (site / "grey_plugin" / "__init__.py").write_text(ADAPTERS.replace('@register_adapter("flaky")', ""))
    dist = site / "grey_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: grey-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nvsbench.adapters]\ngrey_plugin = grey_plugin:Flaky\n")
    monkeypatch.syspath_prepend(str(site))
    code, stdout, _ = cli("list", "adapters")
    assert "grey_plugin" in stdout and "entry point" in stdout
    code, _, err = cli("run", tiny_suite, "--pipeline", "grey_plugin", "--out", tmp_path / "o", "--no-progress")
    assert code == 0, err
    assert _summary(tmp_path / "o")["results"]["grey_plugin"]["l1"]["n"] == N_SAMPLES - 6


def test_help_and_list_do_not_import_torch():
    code = textwrap.dedent(
        """
        import sys
        from bench.cli import main
        for args in (["--help"], ["list", "metrics"], ["list", "stages"], ["list", "suites"], ["list", "adapters"]):
            sys.argv = ["nvsbench", *args]
            try:
                main()
            except SystemExit as exc:
                assert exc.code in (0, None), (args, exc.code)
        assert "torch" not in sys.modules, "torch was imported"
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT)
    assert proc.returncode == 0, proc.stderr
    assert "psnr" in proc.stdout and "point_rasterizer" in proc.stdout and "quickstart" in proc.stdout


def _write_source_as_prediction(preds, cli, tiny_suite, root) -> list[str]:
    """Each sample's source image saved as its prediction, named as ``precomputed`` reads it; returns the sample ids."""
    code, listing, err = cli("data", "samples", tiny_suite)
    assert code == 0, err
    rows = [line.split("\t") for line in listing.splitlines()]
    for sample, scene, sources, targets in rows:
        (preds / sample).mkdir(parents=True)
        for target in targets.split(","):
            shutil.copy(root / scene / "rgb" / f"{sources}.png", preds / sample / f"{target}.png")
    return [r[0] for r in rows]


def test_precomputed_adapter_scores_files_written_by_another_program(cli, tiny_suite, tmp_path, objects_root):
    """Source images saved as predictions, one folder per sample id, must score exactly like the identity pipeline."""
    preds = tmp_path / "preds"
    samples = _write_source_as_prediction(preds, cli, tiny_suite, objects_root)
    assert len(samples) == N_SAMPLES and samples[0] == "car_0000/000000-000001"
    (preds / "car_0000" / "000000-000004" / "000004.png").unlink()
    pipe = tmp_path / "saved.yaml"
    pipe.write_text("name: saved\nadapter: precomputed\nparams: {root: preds}\n")
    code, _, err = cli("run", tiny_suite, "--pipeline", pipe, "--pipeline", "identity", "--out", tmp_path / "out", "--no-progress")
    assert code == 0, err
    s = _summary(tmp_path / "out")
    [failure] = s["failures"]["saved"]
    assert failure["sample"] == "car_0000/000000-000004" and "file not found" in failure["error"]
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        rows = db.execute("SELECT pipeline, sample, metric, value FROM scores ORDER BY sample, metric").fetchall()
    saved = {(s, m): v for p, s, m, v in rows if p == "saved"}
    identity = {(s, m): v for p, s, m, v in rows if p == "identity" and (s, m) in saved}
    assert len(saved) == 3 * (N_SAMPLES - 1)
    assert saved == pytest.approx(identity, abs=1e-9)


def test_precomputed_predictions_overwritten_are_scored_again(cli, tiny_suite, tmp_path, objects_root):
    """The same command into the same --out after the files changed prints the new numbers, not the stored ones."""
    preds = tmp_path / "preds"
    _write_source_as_prediction(preds, cli, tiny_suite, objects_root)
    pipe = tmp_path / "saved.yaml"
    pipe.write_text("name: saved\nadapter: precomputed\nparams: {root: preds}\n")
    args = ("run", tiny_suite, "--pipeline", pipe, "--out", tmp_path / "out", "--no-progress")
    assert cli(*args)[0] == 0
    before = _summary(tmp_path / "out")["results"]["saved"]["psnr"]["mean"]
    for png in preds.rglob("*.png"):  # a better method's output: the same file everywhere, grey
        Image.new("RGB", (32, 32), (128, 128, 128)).save(png)
    assert cli(*args)[0] == 0
    after = _summary(tmp_path / "out")
    assert after["results"]["saved"]["psnr"]["mean"] != pytest.approx(before, abs=1e-6)
    assert cli(*args)[0] == 0 and _summary(tmp_path / "out")["meta"]["run_keys"] == after["meta"]["run_keys"]  # unchanged: reused


PEEKS = '''
from bench.adapter import Adapter
from bench.registry import register_adapter
from bench.types import Prediction


@register_adapter("peeks")
class Peeks(Adapter):
    """Returns the target image as its prediction: a perfect score, if it could see it."""

    def predict(self, sample):
        return Prediction(sample.targets[0].image[None, None])
'''


def test_an_adapter_never_receives_the_ground_truth(cli, tiny_suite, tmp_path):
    code, stdout, err = cli("run", tiny_suite, "--adapters", write_adapters(tmp_path / "a", peeks=PEEKS), "--pipeline", "peeks",
                            "--out", tmp_path / "out", "--no-progress")
    assert code == 1 and "every sample failed for peeks" in err
    failures = _summary(tmp_path / "out")["failures"]["peeks"]
    assert len({f["sample"] for f in failures}) == N_SAMPLES
    assert all("HiddenGroundTruth: target view" in f["error"] and "has no image" in f["error"] for f in failures)
    from bench.types import HiddenGroundTruth, TargetView, View

    blind = TargetView.of(View("v", torch.zeros(3, 4, 5), torch.eye(3), torch.eye(4), torch.ones(4, 5), torch.ones(4, 5, dtype=torch.bool)))
    assert blind.size == (4, 5) and blind.id == "v" and torch.equal(blind.K, torch.eye(3))
    for name in ("image", "depth", "mask", "seg"):
        with pytest.raises(HiddenGroundTruth, match=f"has no {name}"):
            getattr(blind, name)


def test_depth_and_masked_metrics_in_a_run(cli, tmp_path, objects_root):
    suite = write_suite(tmp_path, objects_root, metrics="metrics: [psnr_masked, abs_rel, delta1]")
    code, _, err = cli("run", suite, "--out", tmp_path / "out", "--no-progress")
    assert code == 0, err
    s = _summary(tmp_path / "out")
    oracle = s["results"]["oracle_reproject"]
    # holes of the splat have depth 0 where the target sees the object: scored as misses
    assert oracle["abs_rel"]["n"] == N_SAMPLES and oracle["delta1"]["mean"] > 0.5
    assert s["results"]["identity"]["psnr_masked"]["n"] == N_SAMPLES


GREY_ADAPTER = '''
import torch
from bench.adapter import Adapter
from bench.registry import register_adapter
from bench.types import Prediction


@register_adapter("grey")
class Grey(Adapter):
    outputs = ("image",)

    def predict(self, sample):
        return Prediction(torch.full((len(sample.targets), 1, 3, *sample.targets[0].size), 0.5))


@register_adapter("grey_undeclared")
class GreyUndeclared(Grey):
    outputs = None
'''


def test_metrics_on_a_field_the_pipeline_does_not_predict_are_not_applicable(cli, tmp_path, objects_root, monkeypatch):
    """identity (a stage pipeline without pred_depth) and an adapter declaring ``outputs = ("image",)`` get
    'predicts no depth' for depth metrics, no failures, and a rerun has nothing left to do; an adapter that
    declares nothing is tried, and each sample fails."""
    write_adapters(tmp_path / "adapters", grey=GREY_ADAPTER)
    suite = write_suite(tmp_path, objects_root, metrics="metrics: [psnr, abs_rel]")
    args = ("run", suite, "--out", tmp_path / "out", "--no-progress", "--adapters", tmp_path / "adapters")
    pipes = ("--pipeline", "identity", "--pipeline", "grey", "--pipeline", "grey_undeclared")
    code, stdout, err = cli(*args, *pipes)
    assert code == 0, err
    s = _summary(tmp_path / "out")
    for name in ("identity", "grey"):
        assert s["results"][name]["abs_rel"]["unavailable"] == "predicts no depth"
        assert s["results"][name]["psnr"]["n"] == N_SAMPLES and s["failures"][name] == []
    assert "predicts no depth" in stdout
    undeclared = s["failures"]["grey_undeclared"]
    assert len(undeclared) == 2 * N_SAMPLES  # abs_rel and the depth_coverage reported beside it
    assert {f["error"] for f in undeclared} == {"abs_rel: the pipeline predicts no depth", "depth_coverage: the pipeline predicts no depth"}
    calls = []
    original = StagePipeline.predict_batch
    monkeypatch.setattr(StagePipeline, "predict_batch", lambda self, b, st: calls.append(len(b)) or original(self, b, st))
    assert cli(*args, "--pipeline", "identity")[0] == 0
    assert calls == []


def test_metric_needing_ground_truth_the_suite_lacks(cli, tmp_path, objects_root):
    suite = write_suite(tmp_path, objects_root, dataset=f"dataset: {{reader: srn, root: {objects_root}}}",
                        pipelines="pipelines: [identity]", metrics="metrics: [psnr, abs_rel]")
    code, _, err = cli("validate", suite)
    assert code == 2 and f"{suite}:4: metric 'abs_rel' needs ground-truth depth" in err and "dataset.depth: true" in err


def test_paired_test_and_per_scene_aggregation_in_summary(cli, tiny_suite, tmp_path):
    cli("run", tiny_suite, "--out", tmp_path / "a", "--no-progress")
    psnr = {p: r["psnr"] for p, r in _summary(tmp_path / "a")["results"].items()}
    assert psnr["oracle_reproject"]["best"] and psnr["oracle_reproject"]["p_vs_best"] is None
    assert not psnr["identity"]["best"] and psnr["identity"]["p_vs_best"] < 0.01
    cli("run", tiny_suite, "--out", tmp_path / "a", "--no-progress", "--set", "aggregate=scene")
    s = _summary(tmp_path / "a")
    assert s["aggregate"] == "scene" and s["results"]["identity"]["psnr"]["n"] == 3
    assert s["results"]["identity"]["psnr"]["mean"] == pytest.approx(psnr["identity"]["mean"], rel=0.2)


def test_results_grouped_by_camera_radius(cli, tmp_path, objects_root):
    """The tiny set's cameras sit at 1.3-1.5 from the origin: bins split them, counts add up."""
    bins = "radius_bins: {near: [[1.0, 1.4]], far: [[1.4, 2.0]]}\n"
    suite = write_suite(tmp_path, objects_root, text=bins, pipelines="pipelines: [identity]")
    code, _, err = cli("run", suite, "--out", tmp_path / "out", "--no-progress")
    assert code == 0, err
    psnr = _summary(tmp_path / "out")["results"]["identity"]["psnr"]
    bins = psnr["by_radius"]
    assert set(bins) <= {"near", "far"} and sum(b["n"] for b in bins.values()) == N_SAMPLES
    weighted = sum(b["mean"] * b["n"] for b in bins.values()) / N_SAMPLES
    assert weighted == pytest.approx(psnr["mean"])
    from bench.data.srn import read_pose

    radii = [float(read_pose(p).numpy()[:3, 3].dot(read_pose(p).numpy()[:3, 3]) ** 0.5)
             for p in sorted(objects_root.glob("*/pose/*.txt")) if not p.name.startswith("000000")]
    assert bins["near"]["n"] == sum(r <= 1.4 for r in radii)
    bad = write_suite(tmp_path, objects_root, text="radius_bins: {x: [[2.0, 1.0]]}\n")
    code, _, err = cli("validate", bad)
    assert code == 2 and "radius bin 'x' needs [low, high] intervals" in err


def test_consistency_metric_on_a_trajectory_run(cli, tmp_path, objects_root):
    """Set-level metrics get each sample's generated views with their cameras (and depth)."""
    suite = write_suite(tmp_path, objects_root, protocol="protocol: {kind: trajectory, sources: [0], targets: [1, 2, 3]}",
                        metrics="metrics: [warp_consistency, psnr]")
    code, _, err = cli("run", suite, "--out", tmp_path / "out", "--no-progress")
    assert code == 0, err
    s = _summary(tmp_path / "out")
    assert s["results"]["oracle_reproject"]["warp_consistency"]["n"] == 3
    assert 0.0 < s["results"]["oracle_reproject"]["warp_consistency"]["mean"] <= 1.0
    assert all("depth" in f["error"] for f in s["failures"]["identity"])  # identity predicts no depth


def test_metric_without_weights_is_reported_unavailable(cli, tmp_path, objects_root, monkeypatch):
    monkeypatch.setenv("NVSBENCH_WEIGHTS", str(tmp_path / "no_weights"))
    suite = write_suite(tmp_path, objects_root, metrics="metrics: [psnr, lpips_vgg]", pipelines="pipelines: [identity]")
    code, stdout, err = cli("run", suite, "--out", tmp_path / "out", "--no-progress")
    assert code == 0, err
    entry = _summary(tmp_path / "out")["results"]["identity"]["lpips_vgg"]
    assert entry["unavailable"].startswith("missing weights: ") and str(tmp_path / "no_weights" / "vgg16-397923af.pth") in entry["unavailable"]
    assert "unavailable" in stdout and "no_weights" in stdout
    assert _summary(tmp_path / "out")["results"]["identity"]["psnr"]["n"] == N_SAMPLES
    calls = []
    original = StagePipeline.predict_batch
    monkeypatch.setattr(StagePipeline, "predict_batch", lambda self, s, st: calls.append(len(s)) or original(self, s, st))
    assert cli("run", suite, "--out", tmp_path / "out", "--no-progress")[0] == 0
    assert calls == []  # the unavailable metric is not waited for: the rerun resumes with nothing to do


def test_changed_metric_options_score_again(cli, tmp_path, objects_root, monkeypatch):
    """Rows scored under other metric options are not reused (the run key covers them)."""
    suite = write_suite(tmp_path, objects_root, metrics="metrics: [abs_rel]", pipelines="pipelines: [oracle_reproject]")
    out = tmp_path / "out"
    assert cli("run", suite, "--out", out, "--no-progress")[0] == 0
    plain = _summary(out)["results"]["oracle_reproject"]["abs_rel"]
    calls = []
    original = StagePipeline.predict_batch
    monkeypatch.setattr(StagePipeline, "predict_batch", lambda self, s, st: calls.append(len(s)) or original(self, s, st))
    assert cli("run", suite, "--out", out, "--no-progress", "--set", "metric_options.depth.median_scaling=true")[0] == 0
    scaled = _summary(out)["results"]["oracle_reproject"]["abs_rel"]
    assert sum(calls) == N_SAMPLES and scaled["mean"] != plain["mean"]
    assert cli("run", suite, "--out", tmp_path / "fresh", "--no-progress", "--set", "metric_options.depth.median_scaling=true")[0] == 0
    assert _summary(tmp_path / "fresh")["results"]["oracle_reproject"]["abs_rel"] == scaled


def test_results_of_an_earlier_reader_revision_are_scored_again(cli, tiny_suite, tmp_path, monkeypatch):
    from bench.data.srn import SRNReader

    assert cli("run", tiny_suite, "--out", tmp_path / "out", "--no-progress", "--limit", "4")[0] == 0
    calls = []
    original = StagePipeline.predict_batch
    monkeypatch.setattr(StagePipeline, "predict_batch", lambda self, s, st: calls.append(len(s)) or original(self, s, st))
    monkeypatch.setattr(SRNReader, "revision", SRNReader.revision + 1)  # a fix of what the reader returns
    assert cli("run", tiny_suite, "--out", tmp_path / "out", "--no-progress", "--limit", "4")[0] == 0
    assert sum(calls) == 2 * 4


def test_a_relative_dataset_root_is_keyed_by_the_folder_it_names(cli, tmp_path):
    """Two copies of a suite naming ``root: objs`` (relative to the suite file) in two folders read two datasets:
    written to one results folder, no row of one is reused for the other."""
    means = []
    for folder, seed in (("a", "0"), ("b", "5")):
        code, _, err = cli("data", "synth", "--kind", "objects", "--out", tmp_path / folder / "objs", "--objects", "1", "--views", "3",
                           "--size", "16", "--seed", seed)
        assert code == 0, err
        suite = write_suite(tmp_path / folder, Path("objs"), pipelines="pipelines: [identity]")
        assert cli("run", suite, "--out", tmp_path / "shared", "--no-progress")[0] == 0
        assert cli("run", suite, "--out", tmp_path / f"alone_{folder}", "--no-progress")[0] == 0
        means.append([_summary(tmp_path / out)["results"]["identity"]["psnr"]["mean"] for out in ("shared", f"alone_{folder}")])
    assert all(shared == alone for shared, alone in means) and means[0][1] != means[1][1]


def test_visuals_and_sample_geometry(cli, tiny_suite, tmp_path, objects_root):
    """The first samples get image grids; every sample's angle and radius are recorded for plots."""
    out = tmp_path / "out"
    code, _, err = cli("run", tiny_suite, "--out", out, "--no-progress", "--visuals", "2")
    assert code == 0, err
    from PIL import Image

    from bench.visuals import visual_dir

    keys = _summary(out)["meta"]["run_keys"]  # grids are kept per run key: a resumed run shows its own config's
    grids = sorted(visual_dir(out, "oracle_reproject", keys["oracle_reproject"]).glob("*.png"))
    assert [g.name for g in grids] == ["car_0000_000000-000001.png", "car_0000_000000-000002.png"]
    assert Image.open(grids[0]).size == (4 * 32, 32)  # source | target | prediction | depth
    assert Image.open(sorted(visual_dir(out, "identity", keys["identity"]).glob("*.png"))[0]).size == (3 * 32, 32)
    data_key = _summary(out)["meta"]["data_key"]
    with sqlite3.connect(out / "results.sqlite") as db:
        rows = db.execute("SELECT sample, angle_deg, radius FROM samples WHERE data_key = ?", (data_key,)).fetchall()
    assert len(rows) == N_SAMPLES
    from scipy.spatial.transform import Rotation

    from bench.data.srn import read_pose

    for sample, angle, radius in rows:
        scene, pair = sample.split("/")
        src, tgt = (read_pose(objects_root / scene / "pose" / f"{v}.txt").double().numpy() for v in pair.split("-"))
        expected = Rotation.from_matrix(src[:3, :3].T @ tgt[:3, :3]).magnitude() * 180 / 3.141592653589793
        assert angle == pytest.approx(expected, abs=1e-3)
        assert radius == pytest.approx(float((tgt[:3, 3] ** 2).sum() ** 0.5), abs=1e-5)


def test_summary_says_how_predictions_were_quantized_and_a_change_scores_again(cli, tiny_suite, tmp_path):
    adapters = write_adapters(tmp_path / "adapters", noisy=NOISY_ADAPTER)  # float images off the 8-bit grid
    run = ("run", tiny_suite, "--adapters", adapters, "--pipeline", "noisy", "--no-progress", "--out", tmp_path / "out")
    assert cli(*run)[0] == 0
    floats = _summary(tmp_path / "out")
    assert cli(*run, "--set", "metric_options.quantize=uint8_floor")[0] == 0
    quantized = _summary(tmp_path / "out")
    assert (floats["prediction_quantization"], quantized["prediction_quantization"]) == ("none", "uint8_floor")
    assert quantized["results"]["noisy"]["psnr"]["mean"] != floats["results"]["noisy"]["psnr"]["mean"]
    assert cli(*run, "--set", "metric_options.quantize=uint8")[0] == 2  # not a mode: a config error


def test_suite_draws_add_mean_draw_metrics_and_make_another_run(cli, tiny_suite, tmp_path):
    args = ("run", tiny_suite, "--pipeline", "identity", "--no-progress", "--visuals", "0")
    assert cli(*args, "--out", tmp_path / "one")[0] == 0
    code, stdout, err = cli(*args, "--out", tmp_path / "two", "--set", "draws=2")
    assert code == 0, err
    one, two = _summary(tmp_path / "one"), _summary(tmp_path / "two")
    assert "psnr_of_mean_draw" not in one["results"]["identity"] and "| identity   | psnr_of_mean_draw ↑" in stdout
    result = two["results"]["identity"]
    assert result["psnr_of_mean_draw"]["mean"] == pytest.approx(result["psnr"]["mean"])  # one draw: its mean is itself
    assert one["meta"]["run_keys"]["identity"] != two["meta"]["run_keys"]["identity"]
