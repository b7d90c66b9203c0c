"""The three_dim stage (3DiM) in a pipeline: training fields, sampling shapes and seeds, and which
parameters a checkpoint must match."""

from __future__ import annotations

import torch

from bench.pipeline import load_pipeline
from bench.runner.plan import SampleLoader, collate
from bench.suite import load_suite
from bench.types import BASE_FIELDS
from tests.conftest import write_suite

STAGE = "{stage: three_dim, channels: 8, mults: [1, 2], attention_levels: [1], heads: 2, ray_frequencies: 2, steps: %d, guidance_weight: %g}"


def pipeline_yaml(folder, steps=3, guidance=0.0):
    path = folder / "tiny3dim.yaml"
    path.write_text(f"name: tiny3dim\nstages:\n  - {STAGE % (steps, guidance)}\n")
    return path


def batch(tmp_path, objects_root, n=2):
    suite = load_suite(write_suite(tmp_path, objects_root))
    loader = SampleLoader(suite.reader)
    samples = [loader.load(s) for s in list(suite.protocol.samples(suite.reader))[:n]]
    return suite, samples, collate(samples, suite, 0, "cpu")


def test_training_provides_the_prediction_and_its_target_and_learns(tmp_path, objects_root):
    suite, samples, state = batch(tmp_path, objects_root)
    torch.manual_seed(0)
    pipe = load_pipeline(str(pipeline_yaml(tmp_path)), suite.available_fields).train()
    state["target_image"] = torch.stack([torch.stack([v.image for v in s.targets]) for s in samples])
    out = pipe.forward_train(dict(state))
    assert out["denoise_pred"].shape == out["denoise_target"].shape == (2, 3, 32, 32)
    assert out["pred_image"].shape == (2, 1, 1, 3, 32, 32)
    optimizer = torch.optim.Adam(pipe.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):  # one fixed batch: the loss must fall (noise levels and dropout are redrawn each step)
        torch.manual_seed(len(losses) % 3)
        out = pipe.forward_train(dict(state))
        loss = (out["denoise_pred"] - out["denoise_target"]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < sum(losses[:3])


def test_sampling_fills_the_draw_axis_reproducibly(tmp_path, objects_root):
    suite, samples, state = batch(tmp_path, objects_root)
    torch.manual_seed(0)
    pipe = load_pipeline(str(pipeline_yaml(tmp_path)), suite.available_fields).eval()
    state["draws"] = torch.tensor(2)  # the suite's draws: 2
    for p in pipe.parameters():  # untrained output layers are zero: give the network something to say
        p.data.add_(0.05 * torch.randn_like(p))
    preds = pipe.predict_batch(samples, dict(state))
    assert preds[0].image.shape == (1, 2, 3, 32, 32) and 0 <= float(preds[0].image.min()) <= float(preds[0].image.max()) <= 1
    again = pipe.predict_batch(samples, dict(state))
    assert torch.equal(preds[0].image, again[0].image)  # same seed, same draws
    assert not torch.equal(preds[0].image[:, 0], preds[0].image[:, 1])  # two draws differ
    other = dict(state, seed=state["seed"] + 1)
    assert not torch.equal(pipe.predict_batch(samples, other)[0].image, preds[0].image)


def test_sampling_parameters_change_the_run_but_not_the_model_a_checkpoint_must_match(tmp_path):
    fields = BASE_FIELDS
    base = load_pipeline(str(pipeline_yaml(tmp_path, steps=3)), fields)
    more = load_pipeline(str(pipeline_yaml(tmp_path, steps=8, guidance=3.0)), fields)
    assert base.model_digest == more.model_digest and base.digest != more.digest
    wider = (tmp_path / "tiny3dim.yaml").read_text().replace("channels: 8", "channels: 16")
    (tmp_path / "tiny3dim.yaml").write_text(wider)
    assert load_pipeline(str(tmp_path / "tiny3dim.yaml"), fields).model_digest != base.model_digest


def test_sampling_cost_is_measured_per_view(cli, tmp_path, objects_root):
    """seconds_per_view for every pipeline; nfe_per_view from what the sampler reports (steps per view), unavailable
    for a pipeline that reports none."""
    import json

    suite = write_suite(tmp_path, objects_root, metrics="metrics: [psnr, seconds_per_view, nfe_per_view]", batch_size="batch_size: 2")
    pipe = pipeline_yaml(tmp_path, steps=5)
    code, stdout, err = cli("run", suite, "--pipeline", str(pipe), "--pipeline", "identity", "--limit", "2", "--set", "draws=2",
                            "--out", tmp_path / "out", "--no-progress", "--visuals", "0")
    assert code == 0, err
    results = json.loads((tmp_path / "out" / "summary.json").read_text())["results"]
    assert results["tiny3dim"]["nfe_per_view"]["mean"] == 5.0  # 5 steps for each of 1 target x 2 draws
    assert results["tiny3dim"]["seconds_per_view"]["mean"] > 0 and results["identity"]["seconds_per_view"]["mean"] >= 0
    assert results["identity"]["nfe_per_view"] == {"unavailable": "predicts no nfe", "higher_is_better": False}
