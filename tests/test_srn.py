"""SRN reader and suites: a hand-checked fixture, pixelNeRF's protocol counts, and `data check`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cameras import look_at, project
from bench.data.srn import SRNReader
from bench.data.synth import ObjectSet, object_cameras
from bench.errors import ConfigError
from tests.conftest import PROJECT


@pytest.fixture
def hand_srn(tmp_path):
    """One object, two views: a camera 2 m in front of the origin looking along +z, one rotated 90°."""
    obj = tmp_path / "cars_test" / "abc"
    (obj / "rgb").mkdir(parents=True)
    (obj / "pose").mkdir()
    (obj / "intrinsics.txt").write_text("100.0 64.0 64.0 0.\n0. 0. 0.\n1.\n128 128\n")
    # view 0: identity rotation, centre (0, 0, -2): looks along +z at the origin (16 numbers, 4 lines)
    (obj / "pose" / "000000.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 -2\n0 0 0 1\n")
    # view 1: centre (2, 0, 0) looking along -x: camera x = +z world? columns are camera axes in world
    (obj / "pose" / "000001.txt").write_text("0 0 -1 2 0 1 0 0 1 0 0 0 0 0 0 1\n")
    rgba = np.zeros((64, 64, 4), dtype=np.uint8)  # stored at half the intrinsics' size, with alpha
    rgba[..., 0], rgba[..., 3] = 200, 255
    for v in ("000000", "000001"):
        Image.fromarray(rgba, mode="RGBA").save(obj / "rgb" / f"{v}.png")
    return tmp_path


def test_hand_written_fixture(hand_srn):
    reader = SRNReader(hand_srn, split="cars_test")
    assert reader.scenes() == ["abc"] and reader.view_ids("abc") == ["000000", "000001"]
    v0, v1 = reader.load_view("abc", "000000"), reader.load_view("abc", "000001")
    assert v0.image.shape == (3, 64, 64)  # alpha dropped
    assert v0.image[0, 0, 0].item() == pytest.approx(200 / 255)
    # intrinsics given for 128x128 (principal point 64 from the edge), images are 64x64: f = 50, cx = 32 - 0.5
    torch.testing.assert_close(v0.K, torch.tensor([[50.0, 0, 31.5], [0, 50, 31.5], [0, 0, 1]]))
    # the world point (0.2, -0.1, 0): 2 m in front of view 0, at u = 31.5 + 50*0.2/2 = 36.5, v = 31.5 - 2.5 = 29
    point = torch.tensor([[[0.2, -0.1, 0.0]]])
    uv, z = project(point, v0.K[None], v0.cam2world[None])
    torch.testing.assert_close(uv[0, 0], torch.tensor([36.5, 29.0]))
    assert z.item() == pytest.approx(2.0)
    # view 1 sits at (2, 0, 0) looking along -x; its camera x axis is world -z, so world z = 0 maps to u = cx
    uv, z = project(point, v1.K[None], v1.cam2world[None])
    torch.testing.assert_close(uv[0, 0], torch.tensor([31.5, 31.5 + 50 * -0.1 / 1.8]))
    assert z.item() == pytest.approx(1.8)


@pytest.mark.parametrize("size", [128, 64])
def test_shapenet_renderer_intrinsics_put_the_optical_axis_at_the_image_centre(tmp_path, size):
    """An intrinsics.txt as shapenet_renderer writes it for 128 px (Blender: u_0 = W / 2 from the edge), images at 128 or 64 px."""
    obj = tmp_path / "abc"
    (obj / "rgb").mkdir(parents=True)
    (obj / "pose").mkdir()
    (obj / "intrinsics.txt").write_text("131.250000 64.000000 64.000000 0.\n0. 0. 0.\n1.\n128 128\n")
    c2w = look_at(torch.tensor([[0.4, -1.1, 0.5]]))[0]  # looks at the origin
    (obj / "pose" / "000000.txt").write_text(" ".join(map(str, c2w.flatten().tolist())) + "\n")
    Image.fromarray(np.full((size, size, 3), 255, np.uint8)).save(obj / "rgb" / "000000.png")
    reader = SRNReader(tmp_path)
    torch.testing.assert_close(reader.pose("abc", "000000"), c2w)  # before scenes(): the folder is found on first use
    view = reader.load_view("abc", "000000")
    s = size / 128
    torch.testing.assert_close(view.K, torch.tensor([[131.25 * s, 0, size / 2 - 0.5], [0, 131.25 * s, size / 2 - 0.5], [0, 0, 1]]))
    uv, _ = project(torch.zeros(1, 1, 3), view.K[None], view.cam2world[None])
    torch.testing.assert_close(uv[0, 0], torch.full((2,), (size - 1) / 2))


def test_generated_set_reads_back_its_render_cameras_and_old_sets_are_refused(tmp_path):
    """The generator writes SRN's file convention (cx = S / 2); the reader returns the K it rendered with; a version-1 set
    (whose files held (S - 1) / 2) is refused, and ensure() regenerates it."""
    request = ObjectSet(objects=1, views=1, size=16, split="cars_test")
    request.generate(tmp_path)
    obj = tmp_path / "cars_test" / "car_0000"
    assert (obj / "intrinsics.txt").read_text().split("\n")[0] == "16.406250 8.000000 8.000000 0."
    K, _ = object_cameras(0, 0, 1, 16, request.radius)
    torch.testing.assert_close(SRNReader(tmp_path, split="cars_test").load_view("car_0000", "000000").K, K[0])
    marker = tmp_path / "synth.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "version": 1}))
    with pytest.raises(ConfigError, match="written by version 1 of the objects generator"):
        SRNReader(tmp_path, split="cars_test").scenes()
    assert not request.matches(tmp_path)
    request.ensure(tmp_path)
    assert SRNReader(tmp_path, split="cars_test").scenes() == ["car_0000"]


def test_chairs_training_split_nesting(hand_srn):
    (hand_srn / "chairs_train").mkdir()
    (hand_srn / "cars_test").rename(hand_srn / "chairs_train" / "chairs_2.0_train")
    assert SRNReader(hand_srn, split="chairs_train").scenes() == ["abc"]


@pytest.fixture(scope="module")
def srn_layout(tmp_path_factory):
    """A synthetic SRN download: cars_test/ with 2 objects x 106 views (views 64 and 104 exist)."""
    root = tmp_path_factory.mktemp("srn")
    ObjectSet(objects=2, views=106, size=24, radius=(1.3, 1.3), seed=0, split="cars_test").generate(root)
    return root


@pytest.mark.parametrize("suite, sources", [("srn_cars.yaml", ["000064"]), ("srn_cars_2view.yaml", ["000064", "000104"])])
def test_pixelnerf_protocol_pairs(cli, srn_layout, tmp_path, suite, sources):
    out = tmp_path / "out"
    code, _, err = cli("run", PROJECT / "suites" / suite, "--data-root", srn_layout, "--pipeline", "identity", "--out", out,
                       "--no-progress", "--set", "metrics=[psnr]")
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    n_objects, n_views = 2, 106
    assert s["n_samples"] == n_objects * (n_views - len(sources))
    import sqlite3

    with sqlite3.connect(out / "results.sqlite") as db:
        ids = [r[0] for r in db.execute("SELECT sample FROM scores")]
    assert all(i.split("/")[1].split("-")[0] == "+".join(sources) for i in ids)
    assert len(set(ids)) == s["n_samples"]


def test_data_check_reports_and_names_bad_files(cli, tmp_path, hand_srn):
    code, _, err = cli("data", "check", PROJECT / "suites" / "srn_cars.yaml", "--data-root", hand_srn, "--no-progress")
    assert code == 2 and "scene abc has 2 views; protocol asks for view indices [64]" in err
    suite = tmp_path / "two_views.yaml"
    suite.write_text(f"include: {PROJECT / 'suites' / 'srn_cars.yaml'}\nprotocol: {{kind: source_targets, sources: [0]}}\n")
    code, out, err = cli("data", "check", suite, "--data-root", hand_srn, "--no-progress")
    assert code == 0, err
    assert "scenes: 1, of which the protocol uses 1" in out and "protocol samples: 1; views they use: 2" in out
    assert "64x64 (2)" in out and out.strip().endswith("OK")
    pose = hand_srn / "cars_test" / "abc" / "pose" / "000001.txt"
    pose.write_text("0 0 -1 2 0 1 0 0 1 0 0 0 0 0 0\n")  # 15 numbers
    code, _, err = cli("data", "check", suite, "--data-root", hand_srn, "--no-progress")
    assert code == 2 and f"found 15: {pose}" in err
    pose.write_text("1 0 0 0 0 2 0 0 0 0 1 0 0 0 0 1\n")  # y axis stretched: not a rotation
    code, _, err = cli("data", "check", suite, "--data-root", hand_srn, "--no-progress")
    assert code == 2 and "view '000001': camera rotation is not orthonormal" in err
    pose.write_text("1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n")
    png = hand_srn / "cars_test" / "abc" / "rgb" / "000000.png"
    png.write_bytes(png.read_bytes()[:60])  # truncated
    code, _, err = cli("data", "check", suite, "--data-root", hand_srn, "--no-progress")
    assert code == 2 and f"cannot decode image {png}" in err
    empty = tmp_path / "empty"
    (empty / "cars_test").mkdir(parents=True)
    code, _, err = cli("data", "check", suite, "--data-root", empty, "--no-progress")
    assert code == 2 and "no objects (folders with rgb/)" in err and str(empty / "cars_test") in err
