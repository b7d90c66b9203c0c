"""`nvsbench train`: resume is bit-exact, checkpoints carry what made them, and runs load them."""

from __future__ import annotations

import json

import torch

from bench.train.checkpoint import load_checkpoint
from tests.conftest import write_suite

STAGES = """stages:
  - {stage: resnet_encoder, channels: [8, 16]}
  - {stage: frustum_volume, feature_channels: 24, stride: 2, depth_planes: 8, channels: 4, width: 16, out_channels: 6}
  - {stage: feature_volume_renderer, n_samples: 8, n_rays_train: 64}
  - {stage: feature_to_rgb, channels: 6}
"""




def _pipeline(tmp_path, suite, name="tiny", steps=6, checkpoint="tiny.pt"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n{STAGES}checkpoint: {checkpoint}\ntrain:\n  suite: {suite}\n  steps: {steps}\n  batch_size: 2\n"
                    "  seed: 3\n  log_every: 1\n  save_every: 100\n  optimizer: {kind: adam, lr: 0.01}\n  losses: [{kind: ray_mse}]\n")
    return path


def test_resume_continues_bit_for_bit(cli, tmp_path, objects_root, one_thread):
    suite = write_suite(tmp_path, objects_root)
    straight = _pipeline(tmp_path, suite, "straight", checkpoint="straight.pt")
    code, out, err = cli("train", straight, "--no-progress")
    assert code == 0, err
    assert "step 6" in out
    split = _pipeline(tmp_path, suite, "split", checkpoint="split.pt")
    assert cli("train", split, "--steps", "3", "--no-progress")[0] == 0
    assert load_checkpoint(tmp_path / "split.pt")["step"] == 3
    assert cli("train", split, "--resume", "--no-progress")[0] == 0
    a, b = load_checkpoint(tmp_path / "straight.pt"), load_checkpoint(tmp_path / "split.pt")
    assert a["step"] == b["step"] == 6
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
    assert [r["loss"] for r in a["log"]] == [r["loss"] for r in b["log"]]
    assert a["seed"] == 3 and a["losses"] == [{"kind": "ray_mse", "weight": 1.0, "uses": "as defined"}]
    assert len(a["model_digest"]) == 64 and len(a["suite_digest"]) == 64
    log = [json.loads(line) for line in (tmp_path / "straight.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 7))


def test_run_loads_the_checkpoint_and_rejects_mismatches(cli, tmp_path, objects_root, one_thread):
    suite = write_suite(tmp_path, objects_root)
    pipe = _pipeline(tmp_path, suite, steps=2)
    code, _, err = cli("run", suite, "--pipeline", pipe, "--out", tmp_path / "o", "--no-progress")
    assert code == 2 and "checkpoint not found" in err and "nvsbench train tiny" in err
    assert cli("train", pipe, "--no-progress")[0] == 0
    code, _, err = cli("run", suite, "--pipeline", pipe, "--out", tmp_path / "o", "--no-progress", "--set", "metrics=[psnr]")
    assert code == 0, err
    meta = json.loads((tmp_path / "o" / "summary.json").read_text())["meta"]
    assert meta["checkpoints"]["tiny"]["sha256"] and meta["checkpoints"]["tiny"]["path"].endswith("tiny.pt")
    pipe.write_text(pipe.read_text().replace("channels: [8, 16]", "channels: [8, 24]").replace("feature_channels: 24", "feature_channels: 32"))
    code, _, err = cli("run", suite, "--pipeline", pipe, "--out", tmp_path / "o2", "--no-progress")
    assert code == 2 and "was trained for different stages" in err
    code, _, err = cli("train", pipe, "--resume", "--no-progress")
    assert code == 2 and "was trained for different stages" in err


def test_training_errors_are_clear(cli, tmp_path, objects_root):
    suite = write_suite(tmp_path, objects_root)
    pipe = _pipeline(tmp_path, suite)
    pipe.write_text(pipe.read_text().replace("kind: ray_mse", "kind: ray_mze"))
    code, _, err = cli("train", pipe, "--no-progress")
    assert code == 2 and "unknown loss 'ray_mze'" in err and "did you mean 'ray_mse'" in err
    pipe.write_text(pipe.read_text().replace("kind: ray_mze", "kind: image_l1"))
    code, _, err = cli("train", pipe, "--no-progress")
    assert code == 2 and "loss 'image_l1' needs 'pred_image' in the training state" in err and "use ray_mse" in err
    code, _, err = cli("train", "identity", "--no-progress")
    assert code == 2 and "has no 'train:' section" in err
