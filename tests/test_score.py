"""`nvsbench score` and `score-poses` on files written the way another program would write them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def _rgb(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def image_dirs(tmp_path):
    rng = np.random.default_rng(0)
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    for name in ("a.png", "sub/b.png"):
        target = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        noisy = np.clip(target.astype(int) + rng.integers(-20, 21, target.shape), 0, 255).astype(np.uint8)
        _rgb(gt / name, target)
        _rgb(pred / name, noisy)
    return pred, gt


def test_score_images_match_scikit_image(cli, image_dirs):
    pred, gt = image_dirs
    code, out, err = cli("score", "--pred", pred, "--gt", gt, "--metrics", "psnr,ssim,l1,mae", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"per_image", "mean"} and set(doc["per_image"]) == {"a.png", "sub/b.png"}
    for name, row in doc["per_image"].items():
        p = np.asarray(Image.open(pred / name), dtype=np.float64) / 255
        t = np.asarray(Image.open(gt / name), dtype=np.float64) / 255
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(t, p, data_range=1), abs=1e-4)
        ref_ssim = structural_similarity(t, p, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=2)
        assert row["ssim"] == pytest.approx(ref_ssim, abs=1e-4)
        assert row["l1"] == pytest.approx(np.abs(p - t).mean(), abs=1e-6) and row["mae"] == row["l1"]
    assert doc["mean"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in doc["per_image"].values()]))
    code, out, _ = cli("score", "--pred", pred, "--gt", gt)
    assert code == 0 and "sub/b.png" in out and "mean" in out


def test_score_errors_name_the_file(cli, image_dirs):
    pred, gt = image_dirs
    (pred / "a.png").unlink()
    code, _, err = cli("score", "--pred", pred, "--gt", gt)
    assert code == 2 and f"{gt / 'a.png'} has no counterpart {pred / 'a.png'}" in err
    _rgb(pred / "a.png", np.zeros((10, 10, 3), dtype=np.uint8))
    code, _, err = cli("score", "--pred", pred, "--gt", gt)
    assert code == 2 and f"{pred / 'a.png'} is (3, 10, 10) but {gt / 'a.png'} is (3, 24, 32)" in err
    (pred / "a.png").write_bytes((gt / "a.png").read_bytes()[:40])  # truncated PNG
    code, _, err = cli("score", "--pred", pred, "--gt", gt)
    assert code == 2 and f"cannot decode image {pred / 'a.png'}" in err
    code, _, err = cli("score", "--pred", pred, "--gt", gt, "--metrics", "psnr,abs_rel")
    assert code == 2 and "mixes file kinds" in err
    code, _, err = cli("score", "--pred", pred, "--gt", gt, "--metrics", "pnsr")
    assert code == 2 and "did you mean 'psnr'" in err


def test_score_depth_png_and_npy_agree_with_numpy(cli, tmp_path):
    rng = np.random.default_rng(1)
    gt_m = rng.uniform(0.5, 5.0, (16, 20))
    gt_m[:3] = 0  # invalid rows
    pred_m = gt_m * rng.uniform(0.8, 1.25, gt_m.shape) + (gt_m == 0) * 1.0
    for folder, arr in (("gt", gt_m), ("pred", pred_m)):
        (tmp_path / folder / "png").mkdir(parents=True)
        (tmp_path / folder / "npy").mkdir(parents=True)
        Image.fromarray(np.round(arr * 1000).astype(np.uint16)).save(tmp_path / folder / "png" / "d.png")
        np.save(tmp_path / folder / "npy" / "d.npy", (np.round(arr * 1000) / 1000).astype(np.float32))
    valid = gt_m > 0
    g, p = np.round(gt_m * 1000)[valid] / 1000, np.round(pred_m * 1000)[valid] / 1000
    expected = {"abs_rel": np.mean(np.abs(p - g) / g), "delta1": np.mean(np.maximum(p / g, g / p) < 1.25)}
    for kind in ("png", "npy"):
        code, out, err = cli("score", "--pred", tmp_path / "pred" / kind, "--gt", tmp_path / "gt" / kind,
                             "--metrics", "abs_rel,delta1", "--json")
        assert code == 0, err
        mean = json.loads(out)["mean"]
        assert mean["abs_rel"] == pytest.approx(expected["abs_rel"], abs=1e-4)
        assert mean["delta1"] == pytest.approx(expected["delta1"], abs=1e-4)


def test_score_segmentation_labels(cli, tmp_path):
    gt = np.array([[0, 0, 1, 1], [0, 255, 1, 1]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 0]], dtype=np.uint8)
    for folder, arr in (("gt", gt), ("pred", pred)):
        (tmp_path / folder).mkdir()
        img = Image.fromarray(arr, mode="L").convert("P")
        img.save(tmp_path / folder / "x.png")
    code, out, err = cli("score", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--metrics", "miou,pixel_acc", "--json")
    assert code == 0, err
    mean = json.loads(out)["mean"]
    # background: inter 2, union 4; class 1: inter 3, union 5; 7 valid pixels, 5 correct
    assert mean["miou"] == pytest.approx((2 / 4 + 3 / 5) / 2)
    assert mean["pixel_acc"] == pytest.approx(5 / 7)


def test_score_poses_match_scipy(cli, tmp_path):
    rng = np.random.default_rng(2)
    gt, pred, expected = {}, {}, {}
    for i in range(4):
        r_gt = Rotation.random(random_state=i)
        r_pred = Rotation.from_rotvec(rng.normal(0, 0.2, 3)) * r_gt
        for poses, r in ((gt, r_gt), (pred, r_pred)):
            w2c = np.eye(4)
            w2c[:3, :3] = r.as_matrix()
            w2c[:3, 3] = rng.normal(0, 1, 3)
            poses[f"cam{i}"] = np.linalg.inv(w2c).tolist()
        expected[f"cam{i}"] = np.degrees((r_pred * r_gt.inv()).magnitude())
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    code, out, err = cli("score-poses", "--pred", tmp_path / "pred.json", "--gt", tmp_path / "gt.json", "--json")
    assert code == 0, err
    doc = json.loads(out)
    for name, row in doc["per_image"].items():
        assert row["rot_err_deg"] == pytest.approx(expected[name], abs=1e-4)
        assert row["joint_acc_30"] in (0.0, 1.0)
    assert doc["mean"]["rot_err_deg"] == pytest.approx(np.mean(list(expected.values())), abs=1e-4)
    del pred["cam3"]
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    code, _, err = cli("score-poses", "--pred", tmp_path / "pred.json", "--gt", tmp_path / "gt.json")
    assert code == 2 and f"camera 'cam3' of {tmp_path / 'gt.json'} is missing from {tmp_path / 'pred.json'}" in err
    (tmp_path / "pred.json").write_text(json.dumps({"cam0": [[1, 0], [0, 1]]}))
    code, _, err = cli("score-poses", "--pred", tmp_path / "pred.json", "--gt", tmp_path / "gt.json")
    assert code == 2 and "camera 'cam0' is not a 4x4 matrix" in err
