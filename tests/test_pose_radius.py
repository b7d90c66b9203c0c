"""The NeRF Blender-layout reader, the pose-radius generator, and the per-radius-bin suite."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cameras import look_at, project
from bench.data.blender import BlenderReader
from bench.data.synth import object_mesh, render
from bench.data.synth_pose_radius import PoseRadiusSet
from bench.errors import ConfigError
from tests.conftest import PROJECT

W, H = 8, 6
FOV_X = 2 * math.atan(0.5)  # tan(fov / 2) = 0.5, so f = 0.5 * 8 / 0.5 = 8 px
# Frame 0: OpenGL camera at (0, 0, 4) looking at the origin along its -z: identity rotation.
GL_0 = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]
# Frame 1: OpenGL camera at (4, 0, 0) looking at the origin, world +z up: x_cam = +y, y_cam = +z, z_cam (back) = +x.
GL_1 = [[0, 0, 1, 4], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
# One RGBA row of the images: transparent red, opaque green, half-transparent red (alpha 128).
PIXELS = [(200, 0, 0, 0), (0, 255, 0, 255), (255, 0, 0, 128)]


def write_object(folder: Path, frames: list[dict] | None = None, split: str = "test") -> Path:
    """A hand-written two-frame object in the Blender layout; frame 1 carries nerfstudio-style fl_x and cx."""
    frames = frames if frames is not None else [
        {"file_path": "./test/r_0", "transform_matrix": GL_0},
        {"file_path": "./test/r_1", "transform_matrix": GL_1, "fl_x": 10.0, "cx": 4.0},
    ]
    (folder / split).mkdir(parents=True)
    (folder / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": FOV_X, "frames": frames}))
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[0, :3] = PIXELS
    for name in ("r_0", "r_1"):
        Image.fromarray(rgba, "RGBA").save(folder / split / f"{name}.png")
    return folder


@pytest.fixture
def lego(tmp_path: Path) -> Path:
    return write_object(tmp_path / "lego")


# --------------------------------------------------------------------------- reader: conventions by hand


def test_opengl_pose_becomes_opencv(lego: Path) -> None:
    reader = BlenderReader(lego)
    assert reader.scenes() == ["lego"] and reader.view_ids("lego") == ["r_0", "r_1"]
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
    expected_0 = torch.tensor([[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 4], [0, 0, 0, 1]])  # y and z axes negated
    assert torch.equal(reader.pose("lego", "r_0"), expected_0)
    assert torch.equal(reader.pose("lego", "r_1"), torch.tensor(GL_1, dtype=torch.float32) @ flip)
    # the harness's own look-at camera (OpenCV, world +z up) at the same centres agrees
    assert torch.allclose(reader.pose("lego", "r_1"), look_at(torch.tensor([[4.0, 0.0, 0.0]]))[0], atol=1e-6)
    view = reader.load_view("lego", "r_0")
    assert torch.equal(view.cam2world, expected_0)


def test_intrinsics_and_projection(lego: Path) -> None:
    reader = BlenderReader(lego)
    reader.scenes()
    v0, v1 = reader.load_view("lego", "r_0"), reader.load_view("lego", "r_1")
    # f = 0.5 W / tan(fov / 2) = 8; principal point at the image centre ((W - 1) / 2, (H - 1) / 2) = (3.5, 2.5)
    assert torch.allclose(v0.K, torch.tensor([[8.0, 0, 3.5], [0, 8, 2.5], [0, 0, 1]]))
    # nerfstudio keys of frame 1: fl_y defaults to fl_x, cx = 4.0 counts pixel centres at +0.5 -> 3.5 here
    assert torch.allclose(v1.K, torch.tensor([[10.0, 0, 3.5], [0, 10, 2.5], [0, 0, 1]]))
    points = torch.tensor([[[1.0, 0, 0], [0, 1, 0], [0, 0, 1]]])
    # camera 0 at (0,0,4): world x is image right, world y is image up; depths 4, 4, 3
    uv, z = project(points, v0.K[None], v0.cam2world[None])
    assert torch.allclose(uv[0], torch.tensor([[3.5 + 8 / 4, 2.5], [3.5, 2.5 - 8 / 4], [3.5, 2.5]]))
    assert torch.allclose(z[0], torch.tensor([4.0, 4.0, 3.0]))
    # camera 1 at (4,0,0) looking along -x: world y is image right, world z is image up
    uv, z = project(points, v1.K[None], v1.cam2world[None])
    assert torch.allclose(uv[0], torch.tensor([[3.5, 2.5], [3.5 + 10 / 4, 2.5], [3.5, 2.5 - 10 / 4]]))
    assert torch.allclose(z[0], torch.tensor([3.0, 4.0, 4.0]))


@pytest.mark.parametrize("background", [(1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (0.2, 0.4, 0.6)])
def test_rgba_is_composited_onto_the_background(lego: Path, background: tuple[float, float, float]) -> None:
    reader = BlenderReader(lego, background=background, mask=True)
    reader.scenes()
    view = reader.load_view("lego", "r_0")
    bg = torch.tensor(background)
    a = 128 / 255
    expected = torch.stack([bg, torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 0.0, 0.0]) * a + bg * (1 - a)], dim=1)
    assert torch.allclose(view.image[:, 0, :3], expected, atol=1e-6)
    assert torch.allclose(view.image[:, 1:, :], bg[:, None, None].expand(3, H - 1, W))  # transparent rows
    assert view.mask[0, :3].tolist() == [False, True, True] and not view.mask[1:].any()
    assert reader.provides == {"source_mask"} and BlenderReader(lego).provides == frozenset()


def test_several_objects_as_subfolders(tmp_path: Path) -> None:
    for name in ("ship", "chair"):
        write_object(tmp_path / "set" / name)
    (tmp_path / "set" / "notes").mkdir()  # no transforms file: not a scene
    reader = BlenderReader(tmp_path / "set")
    assert reader.scenes() == ["chair", "ship"]
    assert torch.equal(reader.pose("ship", "r_0"), reader.load_view("chair", "r_0").cam2world)


# --------------------------------------------------------------------------- reader: errors


def test_missing_files_are_named(tmp_path: Path, lego: Path) -> None:
    with pytest.raises(ConfigError, match="dataset folder not found"):
        BlenderReader(tmp_path / "absent").scenes()
    with pytest.raises(ConfigError, match=f"transforms file not found: {lego / 'transforms_val.json'}"):
        BlenderReader(lego, split="val").scenes()
    (lego / "test" / "r_1.png").unlink()
    reader = BlenderReader(lego)
    reader.scenes()
    with pytest.raises(ConfigError, match=f"file not found: {lego / 'test' / 'r_1.png'}"):
        reader.load_view("lego", "r_1")


@pytest.mark.parametrize(
    "matrix, message",
    [
        ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4]], "must be a finite 4x4 matrix, got shape (3, 4)"),
        ([[1.1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]], "not a rotation (max |RᵀR − I| = 0.21"),
        ([[-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]], "det = -1"),
        ("identity", "not a 4x4 matrix of numbers"),
    ],
)
def test_bad_transform_names_file_and_frame(tmp_path: Path, matrix, message: str) -> None:
    folder = write_object(tmp_path / "obj", [
        {"file_path": "./test/r_0", "transform_matrix": GL_0},
        {"file_path": "./test/r_1", "transform_matrix": matrix},
    ])
    reader = BlenderReader(folder)
    reader.scenes()
    with pytest.raises(ConfigError) as err:
        reader.view_ids("obj")
    assert f"{folder / 'transforms_test.json'}: frame 1:" in str(err.value) and message in str(err.value)


# --------------------------------------------------------------------------- generator


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default set (the parameters of suites/pose_radius_synthetic.yaml)."""
    return PoseRadiusSet().generate(tmp_path_factory.mktemp("pose_radius") / "set")


def radii(folder: Path) -> dict[str, float]:
    """Camera distance of each view of one object, by view id, straight from its transforms file."""
    frames = json.loads((folder / "transforms_test.json").read_text())["frames"]
    return {Path(f["file_path"]).name: float(np.linalg.norm(np.array(f["transform_matrix"])[:3, 3])) for f in frames}


def test_generated_radii_span_one_to_seven(generated: Path) -> None:
    objects = sorted(p.name for p in generated.iterdir() if p.is_dir())
    assert objects == ["car_0000", "chair_0001"]
    r = np.array([d for obj in objects for d in radii(generated / obj).values()])
    assert r.size == 32 and r.min() >= 1.0 and r.max() <= 7.0
    assert r.min() < 1.5 and r.max() > 6.5  # the draws reach both ends
    assert ((r >= 3) & (r <= 5)).sum() >= 5 and ((r < 3) | (r > 5)).sum() >= 5


def test_generated_views_agree_with_the_reader(generated: Path) -> None:
    """Rendering again with the cameras the reader builds from the JSON reproduces the stored images:
    the OpenCV -> OpenGL conversion on write, its inverse on read and K from camera_angle_x agree."""
    reader = BlenderReader(generated, mask=True)
    for index, obj in enumerate(reader.scenes()):
        views = [reader.load_view(obj, v) for v in reader.view_ids(obj)]
        K, c2w = torch.stack([v.K for v in views]), torch.stack([v.cam2world for v in views])
        rgb, _, mask = render(object_mesh(index, 0), K, c2w, 64)
        assert torch.equal(torch.stack([v.mask for v in views]), mask)
        assert (torch.stack([v.image for v in views]).permute(0, 2, 3, 1) - rgb).abs().max() <= 0.5 / 255 + 1e-6
        # the object is whole in every view (70° field of view), and the origin projects to the image centre
        assert not (mask[:, 0].any() or mask[:, -1].any() or mask[:, :, 0].any() or mask[:, :, -1].any())
        uv, _ = project(torch.zeros(len(views), 1, 3), K, c2w)
        assert torch.allclose(uv, torch.full_like(uv, 31.5), atol=1e-4)
        assert K[0, 0, 0].item() == pytest.approx(32 / math.tan(math.radians(35)))


def test_generator_images_are_rgba_with_alpha_mask(generated: Path) -> None:
    img = np.asarray(Image.open(generated / "car_0000" / "test" / "r_0.png"))
    assert img.shape == (64, 64, 4) and set(np.unique(img[..., 3])) == {0, 255}
    assert (img[img[..., 3] == 0][:, :3] == 0).all()


@pytest.mark.parametrize("params", [{"radius": (0.5, 7.0)}, {"radius": (5.0, 3.0)}, {"fov_deg": 180.0}, {"views": 0}])
def test_generator_refuses_bad_parameters(params: dict) -> None:
    with pytest.raises(ConfigError, match="pose-radius set|PoseRadiusSet"):
        PoseRadiusSet(**params)


# --------------------------------------------------------------------------- the suite, per radius bin


def test_suite_reports_metrics_per_radius_bin(cli, tmp_path: Path, generated: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(generated, data)  # same parameters as the suite: reused, not regenerated
    code, _, err = cli("run", PROJECT / "suites" / "pose_radius_synthetic.yaml", "--data-root", data, "--out", tmp_path / "out", "--no-progress")
    assert code == 0, err
    psnr = json.loads((tmp_path / "out" / "summary.json").read_text())["results"]["identity"]["psnr"]
    assert psnr["n"] == 30  # 2 objects x 15 targets (view 0 is the source)
    bins = psnr["by_radius"]
    assert set(bins) == {"in_range", "out_of_range"} and bins["in_range"]["n"] + bins["out_of_range"]["n"] == psnr["n"]
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        values = dict(db.execute("SELECT sample, value FROM scores WHERE metric = 'psnr'").fetchall())
    expected = {}
    for obj in ("car_0000", "chair_0001"):
        for view, r in radii(data / obj).items():
            if view != "r_0":
                expected[f"{obj}/r_0-{view}"] = "in_range" if 3 <= r <= 5 else "out_of_range"
    for label, entry in bins.items():
        members = [values[s] for s, g in expected.items() if g == label]
        assert entry["n"] == len(members) and entry["mean"] == pytest.approx(sum(members) / len(members), rel=1e-12)
    # Other bins on the same results folder: regrouped from the stored geometry, nothing scored again.
    code, _, err = cli("run", PROJECT / "suites" / "pose_radius_synthetic.yaml", "--data-root", data, "--out", tmp_path / "out",
                       "--no-progress", "--set", "radius_bins={near: [[0, 4]], far: [[4, 100]]}")
    assert code == 0, err
    regrouped = json.loads((tmp_path / "out" / "summary.json").read_text())["results"]["identity"]["psnr"]["by_radius"]
    near = [values[s] for obj in ("car_0000", "chair_0001") for v, r in radii(data / obj).items() if v != "r_0" and r <= 4
            for s in [f"{obj}/r_0-{v}"]]
    assert set(regrouped) == {"near", "far"} and regrouped["near"]["n"] == len(near)
    assert regrouped["near"]["mean"] == pytest.approx(sum(near) / len(near), rel=1e-12)
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM scores WHERE metric = 'psnr'").fetchone()[0] == len(values)
