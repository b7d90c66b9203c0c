"""RealEstate10K / ACID reader (hand-written fixture), the synthetic room generator, and the suites."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cameras import project, relative_pose, unproject_depth
from bench.data import synth_rooms
from bench.data.re10k import RE10KReader
from bench.data.synth_rooms import RoomsSet
from bench.errors import ConfigError
from bench.suite import load_suite

PROJECT = Path(__file__).resolve().parent.parent
SEQ = "0123456789abcdef"
H, W = 8, 16
# Three frames, written out of timestamp order. Normalised fx fy cx cy, two zeros, row-major [R | t].
FRAMES = {
    "2000000": "0.5 0.8 0.25 0.75 0 0  0 -1 0 1  1 0 0 -2  0 0 1 3",  # R = 90 deg about z, t = (1, -2, 3)
    "999999": "0.5 0.8 0.5 0.5 0 0  1 0 0 0  0 1 0 0  0 0 1 0",  # identity
    "1000000": "0.5 0.8 0.5 0.5 0 0  0.6 0 0.8 0.5  0 1 0 0  -0.8 0 0.6 -1",  # R about y (cos 0.6, sin 0.8), t = (0.5, 0, -1)
}


def write_clip(root: Path, frames: dict[str, str] = FRAMES, image: np.ndarray | None = None) -> Path:
    """A one-clip RE10K folder: ``root/test/SEQ.txt`` and an 8 x 16 frame per line; returns the camera file."""
    cameras = root / "test" / f"{SEQ}.txt"
    cameras.parent.mkdir(parents=True, exist_ok=True)
    cameras.write_text("https://www.youtube.com/watch?v=abcdefghijk\n" + "".join(f"{t} {v}\n" for t, v in frames.items()))
    folder = root / "frames" / "test" / SEQ
    folder.mkdir(parents=True, exist_ok=True)
    if image is None:  # left half black, right half white
        image = np.zeros((H, W, 3), np.uint8)
        image[:, W // 2 :] = 255
    for timestamp in frames:
        Image.fromarray(image).save(folder / f"{timestamp}.png")
    return cameras


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    write_clip(tmp_path)
    return tmp_path


# --------------------------------------------------------------------------- hand-written fixture


def test_views_are_timestamps_in_numeric_order(clip):
    reader = RE10KReader(clip, size=(H, W))
    assert reader.scenes() == [SEQ]
    assert reader.view_ids(SEQ) == ["999999", "1000000", "2000000"]  # not the string order


def test_intrinsics_scale_to_pixels_with_integer_pixel_centres(clip):
    view = RE10KReader(clip, size=(H, W)).load_view(SEQ, "2000000")
    # fx * W, fy * H; the corner-convention principal point moves by half a pixel: cx * W - 0.5
    expected = torch.tensor([[0.5 * 16, 0.0, 0.25 * 16 - 0.5], [0.0, 0.8 * 8, 0.75 * 8 - 0.5], [0.0, 0.0, 1.0]])
    assert torch.allclose(view.K, expected)
    centred = RE10KReader(clip, size=(H, W)).load_view(SEQ, "999999").K
    assert centred[0, 2] == pytest.approx((W - 1) / 2) and centred[1, 2] == pytest.approx((H - 1) / 2)


def test_known_point_projects_to_its_pixel(clip):
    view = RE10KReader(clip, size=(H, W)).load_view(SEQ, "2000000")
    # x_cam = R (1, 1, 1) + t = (-1 + 1, 1 - 2, 1 + 3) = (0, -1, 4); u = 8 * 0 / 4 + 3.5, v = 6.4 * -1 / 4 + 5.5
    uv, z = project(torch.tensor([[[1.0, 1.0, 1.0]]]), view.K[None], view.cam2world[None])
    assert uv[0, 0].tolist() == pytest.approx([3.5, 3.9], abs=1e-5) and z.item() == pytest.approx(4.0)
    # camera centre -Rᵀ t = -((−2), (−1), 3) = (2, 1, -3)
    assert view.cam2world[:3, 3].tolist() == pytest.approx([2.0, 1.0, -3.0])


def test_resized_frames_keep_the_projection_in_corner_coordinates(clip):
    reader = RE10KReader(clip, size=(4, 8))
    view = reader.load_view(SEQ, "2000000")
    assert view.image.shape == (3, 4, 8)
    assert torch.allclose(view.K, torch.tensor([[4.0, 0.0, 1.5], [0.0, 3.2, 2.5], [0.0, 0.0, 1.0]]))
    # the full-size pixel (3.5, 3.9) is (4, 4.4) from the corner, half of it (2, 2.2), minus 0.5
    uv, _ = project(torch.tensor([[[1.0, 1.0, 1.0]]]), view.K[None], view.cam2world[None])
    assert uv[0, 0].tolist() == pytest.approx([1.5, 1.7], abs=1e-5)
    # antialiased bilinear, 2x down: output column 3 is centred on input 6.5, the triangle of
    # radius 2 weighs inputs 5..8 by 1/8, 3/8, 3/8, 1/8 and only input 8 is white
    row = view.image[0, 0].tolist()
    assert row == pytest.approx([0, 0, 0, 0.125, 0.875, 1, 1, 1], abs=1e-6)
    assert torch.equal(view.image, view.image[:, :1].expand_as(view.image))


def test_a_resize_to_another_aspect_ratio_is_reported_in_data_check_and_the_run(cli, clip, tmp_path):
    """8x16 frames read at 6x8: x scaled by 0.5, y by 0.75; K per axis, and both data check and the run's meta say so."""
    view = RE10KReader(clip, size=(6, 8)).load_view(SEQ, "2000000")
    assert torch.allclose(view.K, torch.tensor([[0.5 * 8, 0.0, 0.25 * 8 - 0.5], [0.0, 0.8 * 6, 0.75 * 6 - 0.5], [0.0, 0.0, 1.0]]))
    note = ("8x16 (H x W) frames resized to 6x8 ({n} loaded): x scaled by 0.5, y by 0.75, so the aspect ratio W/H changes "
            "from 2 to 1.333; K is built for the output size (fx, cx scaled by 0.5; fy, cy by 0.75)")
    suite = tmp_path / "re10k.yaml"
    suite.write_text(f"name: resized\ndataset: {{reader: re10k, root: {clip}, size: [6, 8]}}\n"
                     "protocol: {kind: source_targets, sources: [0]}\nmetrics: [l1]\npipelines: [identity]\n")  # equal frames: psnr is inf
    code, stdout, err = cli("data", "check", suite, "--no-progress")
    assert code == 0, err
    assert f"resized on load: {note.format(n=3)}" in stdout
    code, _, err = cli("run", suite, "--out", tmp_path / "out", "--no-progress")
    assert code == 0, err
    data = json.loads((tmp_path / "out" / "summary.json").read_text())["meta"]["data"]
    assert data["resized"] == [note.format(n=1)] and data["image_size"] == [6, 8] and data["generated"] is None
    assert RE10KReader(clip, size=(H, W)).resize_notes() == []


def test_relative_pose_matches_geofree_formula(clip):
    reader = RE10KReader(clip, size=(H, W))
    src, dst = reader.pose(SEQ, "1000000").double(), reader.pose(SEQ, "2000000").double()
    # R_rel = R_dst R_srcᵀ, t_rel = t_dst - R_rel t_src, worked by hand from FRAMES
    r_rel = torch.tensor([[0.0, -1.0, 0.0], [0.6, 0.0, -0.8], [0.8, 0.0, 0.6]], dtype=torch.float64)
    t_rel = torch.tensor([1.0, -2.0 - 1.1, 3.0 + 0.2], dtype=torch.float64)
    rel = relative_pose(src, dst)
    assert torch.allclose(rel[:3, :3], r_rel, atol=1e-6) and torch.allclose(rel[:3, 3], t_rel, atol=1e-6)
    assert rel[3].tolist() == [0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "line, message",
    [
        ("0.5 0.8 0.5 0.5 0 0  1 0 0 0  0 1 0 0  0 0 1", "needs 19 values"),
        ("0.5 0.8 0.5 0.5 0 0  1 0 0 0  0 1 0 0  0 0 1 zero", "not numeric"),
    ],
)
def test_malformed_camera_line_names_file_and_line(tmp_path, line, message):
    cameras = write_clip(tmp_path, {"1": FRAMES["999999"], "2": line})
    with pytest.raises(ConfigError, match=message) as err:
        RE10KReader(tmp_path).view_ids(SEQ)
    assert f"{cameras}:3" in str(err.value)


def test_duplicate_timestamp_names_file_and_line(tmp_path):
    cameras = write_clip(tmp_path)
    cameras.write_text(cameras.read_text() + f"2000000 {FRAMES['2000000']}\n")
    with pytest.raises(ConfigError, match="appears twice") as err:
        RE10KReader(tmp_path).view_ids(SEQ)
    assert f"{cameras}:5" in str(err.value)


def test_missing_files_name_their_path(clip, tmp_path):
    reader = RE10KReader(clip, size=(H, W))
    with pytest.raises(ConfigError, match="camera file not found") as err:
        reader.view_ids("ffffffffffffffff")
    assert str(clip / "test" / "ffffffffffffffff.txt") in str(err.value)
    frame = clip / "frames" / "test" / SEQ / "1000000.png"
    frame.unlink()
    with pytest.raises(ConfigError, match="file not found") as err:
        reader.load_view(SEQ, "1000000")
    assert str(frame) in str(err.value)
    with pytest.raises(ConfigError, match="dataset folder not found"):
        RE10KReader(tmp_path / "absent").scenes()


# --------------------------------------------------------------------------- shipped suites


@pytest.mark.parametrize("name", ["realestate_custom_frames.txt", "acid_custom_frames.txt"])
def test_shipped_triplets_parse(name):
    lines = (PROJECT / "suites" / name).read_text().splitlines()
    fields = [line.split(",") for line in lines]
    assert len(lines) == 141 and all(len(f) == 4 for f in fields)
    assert all(re.fullmatch(r"[0-9a-f]{16}", f[0]) and all(re.fullmatch(r"\d+\.png", x) for x in f[1:]) for f in fields)
    assert len({f[0] for f in fields}) == len(lines)  # GeoFree asserts one triplet per clip


def test_synthetic_suite_paths_resolve_against_the_file_that_wrote_them():
    real = load_suite(PROJECT / "suites" / "realestate10k.yaml")
    assert real.protocol.triplets == PROJECT / "suites" / "realestate_custom_frames.txt"
    assert real.reader.root == PROJECT / "data" / "realestate10k" and real.reader.size == (208, 368)
    synthetic = load_suite(PROJECT / "suites" / "realestate10k_synthetic.yaml")
    assert synthetic.protocol.triplets is None and synthetic.protocol.in_root == "triplets.txt"
    assert synthetic.reader.root == PROJECT / "data" / "realestate10k_synthetic" and synthetic.reader.size == (64, 112)
    assert synthetic.generator == RoomsSet(scenes=3, frames=30, size=(64, 112), seed=0)
    assert list(synthetic.metrics) == list(real.metrics)


# --------------------------------------------------------------------------- generated stand-in


@pytest.fixture(scope="module")
def rooms(tmp_path_factory) -> Path:
    """The synthetic suite's stand-in (RoomsSet defaults: 3 rooms x 30 frames at 64 x 112)."""
    return RoomsSet().generate(tmp_path_factory.mktemp("rooms") / "re10k")


def test_generated_layout_and_counts(rooms):
    reader = RE10KReader(rooms, size=(64, 112))
    assert reader.scenes() == sorted(synth_rooms.sequence_id(i, 0) for i in range(3))
    assert all(re.fullmatch(r"[0-9a-f]{16}", s) for s in reader.scenes())
    triplets = [line.split(",") for line in (rooms / "triplets.txt").read_text().splitlines()]
    assert sorted(t[0] for t in triplets) == reader.scenes()
    for seq, *frames in triplets:
        ids = reader.view_ids(seq)
        assert len(ids) == 30 and [int(i) for i in ids] == sorted(int(i) for i in ids)
        assert len(list((rooms / "frames" / "test" / seq).glob("*.png"))) == 30
        a, b, c = (ids.index(f.removesuffix(".png")) for f in frames)
        assert a < b < c and b - a < c - b
        assert (rooms / "test" / f"{seq}.txt").read_text().startswith("https://www.youtube.com/watch?v=")


def test_generated_cameras_read_back(rooms):
    reader = RE10KReader(rooms, size=(64, 112))
    for index in range(3):
        seq = synth_rooms.sequence_id(index, 0)
        expected = synth_rooms.room_cameras(synth_rooms.room(index, 0), index, 0, 30)
        for view_id, c2w in zip(reader.view_ids(seq), expected):
            view = reader.load_view(seq, view_id)
            assert view.image.shape == (3, 64, 112)
            assert torch.allclose(view.K, torch.tensor([[56.0, 0.0, 55.5], [0.0, 56.0, 31.5], [0.0, 0.0, 1.0]]))
            rot = view.cam2world[:3, :3].double()
            assert torch.allclose(rot.T @ rot, torch.eye(3, dtype=torch.float64), atol=1e-6)
            assert torch.linalg.det(rot).item() == pytest.approx(1.0, abs=1e-6)
            assert torch.allclose(view.cam2world, c2w, atol=1e-5)


def _warp_error(view_a, view_b, depth_a, depth_b, shift: float) -> tuple[float, float]:
    """Mean |a - b warped into a| over pixels of a seen unoccluded in b, with b's principal point moved by ``shift``."""
    h, w = depth_a.shape[-2:]
    points = unproject_depth(depth_a, view_a.K[None], view_a.cam2world[None])
    uv, z = project(points, view_b.K[None], view_b.cam2world[None])
    grid = (uv / uv.new_tensor([w - 1, h - 1]) * 2 - 1).reshape(1, h, w, 2)
    seen = torch.nn.functional.grid_sample(depth_b[None], grid, mode="nearest", align_corners=True)[0, 0]
    valid = (grid.abs() <= 1).all(-1)[0] & ((seen - z.reshape(h, w)).abs() < 0.02)
    shifted = grid + torch.tensor([shift / (w - 1), shift / (h - 1)]) * 2
    warped = torch.nn.functional.grid_sample(view_b.image[None], shifted, align_corners=True)[0]
    return float((warped - view_a.image).abs().mean(0)[valid].mean()), float(valid.float().mean())


def test_generated_frames_are_geometrically_consistent(rooms):
    """Frame 3 warped into frame 0 by the rendered depth and the cameras as read matches frame 0 best
    with no shift: half a pixel either way is clearly worse (the normalised principal point's convention)."""
    reader = RE10KReader(rooms, size=(64, 112))
    seq = synth_rooms.sequence_id(0, 0)
    ids = reader.view_ids(seq)
    view_a, view_b = reader.load_view(seq, ids[0]), reader.load_view(seq, ids[3])
    mesh = synth_rooms.room(0, 0).mesh
    _, depth = synth_rooms.render(mesh, torch.stack([view_a.K, view_b.K]), torch.stack([view_a.cam2world, view_b.cam2world]), (64, 112))
    assert (depth > 0).all()  # a closed room: every pixel sees a surface
    error, coverage = _warp_error(view_a, view_b, depth[:1], depth[1:], 0.0)
    assert coverage > 0.6 and error < 0.015
    assert error < 0.4 * float((view_b.image - view_a.image).abs().mean())
    for shift in (-0.5, 0.5):
        assert _warp_error(view_a, view_b, depth[:1], depth[1:], shift)[0] > 1.3 * error


def test_generation_is_deterministic(tmp_path):
    small = RoomsSet(scenes=1, frames=4, size=(16, 24), seed=5)
    first, second = small.generate(tmp_path / "a"), small.generate(tmp_path / "b")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file()) and len(files) == 7
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    assert synth_rooms.sequence_id(0, 5) != synth_rooms.sequence_id(0, 6)


def test_generator_parameters_are_checked():
    with pytest.raises(ConfigError, match="'frames' must be at least 4"):
        RoomsSet(frames=3)


def test_synthetic_suite_scores_four_samples_per_triplet(cli, rooms, tmp_path):
    out = tmp_path / "out"
    code, _, err = cli(
        "run", PROJECT / "suites" / "realestate10k_synthetic.yaml", "--data-root", rooms,
        "--pipeline", "identity", "--out", out, "--no-progress",
    )
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    lines = (rooms / "triplets.txt").read_text().splitlines()
    assert summary["n_samples"] == 4 * len(lines) == 12
    assert summary["results"]["identity"]["psnr"]["n"] == 12
