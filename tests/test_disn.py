"""DISN reader, its synthetic stand-in and the shapenet_depth_pairs suites.

The hand-written fixture's numbers are computed by hand from DISN's conventions
(bench/data/disn.py): a camera at yaw 0, elevation 0 and distance 0.8 * 1.75 = 1.4 sits at
(1.4, 0, 0) looking along -x with world +z up, so its image x axis is world +y and its image
y axis is world -z; with W = 32, f = 35 / 32 * 32 = 35 px and c = 15.5.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cameras import project, unproject_depth
from bench.data import synth
from bench.data.disn import DISNReader
from bench.data.synth_depth_pairs import DepthPairsSet
from bench.errors import ConfigError
from bench.protocol import AzimuthPairs, azimuth_deg
from tests.conftest import PROJECT

CAR = "02958343"
METADATA = (
    "[0,0,0,0.8,35,32,1.75,0.0,0.0,0.0], \n"  # centre (1.4, 0, 0)
    "[90,30,0,1.0,35,32,1.75,0.0,0.0,0.0], \n"  # centre 1.75 (0, -cos 30, sin 30)
    "[180,0,0,1.0,35,32,1.75,0.1,0.2,0.3], \n"  # (-1.75, 0, 0): the recorded shift is not applied (see disn.py)
)
POINT = (0.0, 0.18, 0.1)  # seen by view 00 at u = 35 * 0.18 / 1.4 + 15.5 = 20, v = 35 * -0.1 / 1.4 + 15.5 = 13, z = 1.4
DEPTH_CODE = 250  # round((1.4 - 0.7) * 1.4 * 255) = round(249.9)


def _png(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode="RGBA").save(path)


@pytest.fixture
def hand_disn(tmp_path):
    """One car, three views in the metadata; images for views 00 and 02, depth for view 00 only."""
    image_dir, depth_dir = tmp_path / "image" / CAR / "abc" / "easy", tmp_path / "depth" / CAR / "abc" / "easy"
    rgba = np.full((32, 32, 4), 9, dtype=np.uint8)
    rgba[..., 3] = 0  # transparent background with non-zero colour, as in DISN's files
    rgba[13, 20] = (200, 0, 0, 255)
    rgba[2, 3] = (0, 0, 255, 102)  # alpha 0.4: composited over white -> (0.6, 0.6, 1.0), not in the mask
    for view in ("00", "02"):
        _png(image_dir / f"{view}.png", rgba)
    depth = np.full((32, 32), 255, dtype=np.uint8)  # background
    depth[13, 20] = DEPTH_CODE
    depth[0, 1] = 0  # nearer than 0.7: clipped, invalid
    depth[5, 5] = 127  # 0.7 + 127 / 357
    _png(depth_dir / "00.png", np.repeat(depth[..., None], 4, axis=-1))
    (image_dir / "rendering_metadata.txt").write_text(METADATA)
    return tmp_path


def test_cameras_by_hand(hand_disn):
    reader = DISNReader(hand_disn, categories=(CAR,), size=None, depth=False)
    assert reader.scenes() == [f"{CAR}/abc"] and reader.view_ids(f"{CAR}/abc") == ["00", "01", "02"]
    c2w = {v: reader.pose(f"{CAR}/abc", v).double() for v in ("00", "01", "02")}  # view 01 has no image: metadata only
    expected_00 = torch.tensor([[0, 0, -1, 1.4], [1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(c2w["00"], expected_00, atol=1e-6, rtol=0)
    torch.testing.assert_close(c2w["01"][:3, 3], torch.tensor([0.0, -1.75 * math.sqrt(3) / 2, 0.875], dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(c2w["02"][:3, 3], torch.tensor([-1.75, 0.0, 0.0], dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(c2w["02"][:3, 2], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-6, rtol=0)
    assert azimuth_deg(c2w["01"]) == pytest.approx(270.0)  # the protocol's azimuth is -yaw
    view = reader.load_view(f"{CAR}/abc", "00")
    torch.testing.assert_close(view.cam2world.double(), c2w["00"])
    torch.testing.assert_close(view.K, torch.tensor([[35.0, 0, 15.5], [0, 35.0, 15.5], [0, 0, 1]]))
    uv, z = project(torch.tensor([[POINT]]), view.K[None], view.cam2world[None])
    torch.testing.assert_close(uv[0, 0], torch.tensor([20.0, 13.0]), atol=1e-4, rtol=0)
    assert float(z[0, 0]) == pytest.approx(1.4, abs=1e-6)
    with pytest.raises(ConfigError, match="01.png"):
        reader.load_view(f"{CAR}/abc", "01")


def test_depth_mask_and_background_by_hand(hand_disn):
    view = DISNReader(hand_disn, categories=(CAR,), size=None).load_view(f"{CAR}/abc", "00")
    assert view.depth[13, 20] == pytest.approx(0.7 + 250 / 357) and view.depth[5, 5] == pytest.approx(0.7 + 127 / 357)
    assert view.depth[0, 1] == 0 and view.depth[0, 0] == 0 and int((view.depth > 0).sum()) == 2
    point = unproject_depth(view.depth[None], view.K[None], view.cam2world[None])[0, 13 * 32 + 20]
    torch.testing.assert_close(
        point, torch.tensor(POINT) * (0.7 + 250 / 357) / 1.4 + torch.tensor([1.4 - (0.7 + 250 / 357), 0, 0]), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(view.image[:, 13, 20], torch.tensor([200 / 255, 0.0, 0.0]))
    torch.testing.assert_close(view.image[:, 2, 3], torch.tensor([0.6, 0.6, 1.0]))
    torch.testing.assert_close(view.image[:, 0, 0], torch.ones(3))  # stored colour (9, 9, 9) at alpha 0
    assert view.mask[13, 20] and not view.mask[2, 3] and int(view.mask.sum()) == 1


def test_resize_scales_intrinsics_about_pixel_edges(hand_disn):
    view = DISNReader(hand_disn, categories=(CAR,), size=64).load_view(f"{CAR}/abc", "00")
    assert view.image.shape == (3, 64, 64) and view.depth.shape == view.mask.shape == (64, 64)
    torch.testing.assert_close(view.K, torch.tensor([[70.0, 0, 31.5], [0, 70.0, 31.5], [0, 0, 1]]))
    uv, _ = project(torch.tensor([[POINT]]), view.K[None], view.cam2world[None])
    torch.testing.assert_close(uv[0, 0], torch.tensor([40.5, 26.5]), atol=1e-4, rtol=0)  # (20 + 0.5) * 2 - 0.5
    torch.testing.assert_close(view.depth[26:28, 40:42], torch.full((2, 2), 0.7 + 250 / 357))  # nearest neighbour
    assert int((view.depth > 0).sum()) == 8 and int(view.mask.sum()) == 4


def test_errors_name_the_file(hand_disn, tmp_path):
    reader = DISNReader(tmp_path / "nowhere")  # no disk access before scenes()
    with pytest.raises(ConfigError, match="nowhere"):
        reader.scenes()
    with pytest.raises(ConfigError, match=f"{CAR}_test.lst"):
        DISNReader(hand_disn, categories=(CAR,), split="test").scenes()
    (hand_disn / "filelists").mkdir()
    (hand_disn / "filelists" / f"{CAR}_test.lst").write_text("abc\n")
    assert DISNReader(hand_disn, categories=(CAR,), split="test").scenes() == [f"{CAR}/abc"]
    (hand_disn / "filelists" / f"{CAR}_test.lst").write_text("abc\nmissing\n")
    with pytest.raises(ConfigError, match="missing"):
        DISNReader(hand_disn, categories=(CAR,), split="test").scenes()
    meta = hand_disn / "image" / CAR / "abc" / "easy" / "rendering_metadata.txt"
    meta.write_text(METADATA + "\n[1,2,3], \n")
    with pytest.raises(ConfigError, match=f"{re.escape(str(meta))}:5"):
        DISNReader(hand_disn, categories=(CAR,)).view_ids(f"{CAR}/abc")


# --------------------------------------------------------------------------- generator

OBJECTS, VIEWS, SIZE = 2, 18, 32


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return DepthPairsSet(objects=OBJECTS, views=VIEWS, size=SIZE, seed=3).generate(tmp_path_factory.mktemp("disn") / "set")


def test_generated_layout_and_metadata(generated):
    scenes = {CAR: "car_0000", "03001627": "chair_0001"}
    for cat, obj in scenes.items():
        image_dir, depth_dir = generated / "image" / cat / obj / "easy", generated / "depth" / cat / obj / "easy"
        names = [f"{v:02d}.png" for v in range(VIEWS)]
        assert sorted(p.name for p in image_dir.iterdir()) == sorted(names + ["rendering_metadata.txt"])
        assert sorted(p.name for p in depth_dir.iterdir()) == sorted(names + ["rendering_metadata.txt"])
        text = (image_dir / "rendering_metadata.txt").read_text()
        assert text == (depth_dir / "rendering_metadata.txt").read_text()
        lines = text.splitlines()
        assert len(lines) == VIEWS and all(ln.endswith("], ") for ln in lines)
        for i, line in enumerate(lines):
            yaw, el, zero, ratio, *rest = (float(x) for x in line[1:-3].split(","))
            assert yaw == 20.0 * (i + 1) and 20 <= el <= 30 and zero == 0 and 0.65 <= ratio <= 1.0
            assert rest == [35, 32, 1.75, 0, 0, 0]
        assert (generated / "filelists" / f"{cat}_test.lst").read_text() == f"{obj}\n"
        rgba = np.asarray(Image.open(image_dir / "00.png"))
        depth = np.asarray(Image.open(depth_dir / "00.png"))
        assert rgba.shape == depth.shape == (SIZE, SIZE, 4) and rgba.dtype == depth.dtype == np.uint8
        assert (depth == depth[..., :1]).all() and (depth[rgba[..., 3] == 0, 0] == 255).all()
    assert json.loads((generated / "synth.json").read_text()) == DepthPairsSet(OBJECTS, VIEWS, SIZE, 3).params()


def test_generated_set_through_the_reader(generated):
    reader = DISNReader(generated, split="test", size=None)
    assert reader.scenes() == [f"{CAR}/car_0000", "03001627/chair_0001"]
    for scene in reader.scenes():
        azimuths = [azimuth_deg(reader.pose(scene, v)) for v in reader.view_ids(scene)]
        np.testing.assert_allclose(azimuths, [(-20.0 * (i + 1)) % 360 for i in range(VIEWS)], atol=1e-3)
    assert sum(1 for _ in AzimuthPairs(40.0, exact=True).samples(reader)) == OBJECTS * VIEWS * 2  # partners at +-40
    assert sum(1 for _ in AzimuthPairs(40.0, exact=False).samples(reader)) == OBJECTS * VIEWS * 4  # +-20 and +-40


def test_generated_files_match_a_render_from_the_readers_cameras(generated):
    """Re-render object 0 with pytorch3d from the reader's K and poses: the files hold that render, depth to half a code step."""
    reader = DISNReader(generated, size=None)
    views = [reader.load_view(f"{CAR}/car_0000", v) for v in reader.view_ids(f"{CAR}/car_0000")]
    mesh = synth.object_mesh(0, 3).scale_verts(0.45 / synth.OBJECT_RADIUS)
    rgb, depth, mask = synth.render(mesh, torch.stack([v.K for v in views]), torch.stack([v.cam2world for v in views]), SIZE)
    assert torch.equal(torch.stack([v.mask for v in views]), mask)
    in_range = mask & (depth > 0.7 + 0.5 / 357) & (depth < 0.7 + 254.5 / 357)  # DISN's code 0 and 255 are invalid
    read = torch.stack([v.depth for v in views])
    assert torch.equal(read > 0, in_range) and 0.3 < float(in_range.sum() / mask.sum()) < 1
    assert float((read - depth)[in_range].abs().max()) <= 0.5 / 357 + 1e-6
    assert float((torch.stack([v.image for v in views]).permute(0, 2, 3, 1) - rgb).abs().max()) <= 0.5 / 255 + 1e-6


def test_synthetic_suite_oracle_beats_identity(cli, tmp_path):
    out = tmp_path / "out"
    code, _, err = cli(
        "run", PROJECT / "suites" / "shapenet_depth_pairs_synthetic.yaml", "--data-root", tmp_path / "data", "--out", out, "--no-progress",
        "--pipeline", "identity", "--pipeline", "oracle_reproject",
    )
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 4 * 36 * 2  # 2 cars + 2 chairs, 36 views, two partners four views away
    identity, oracle = summary["results"]["identity"], summary["results"]["oracle_reproject"]
    assert oracle["l1"]["mean"] < identity["l1"]["mean"] and oracle["ssim"]["mean"] > identity["ssim"]["mean"]
    assert identity["abs_rel"]["unavailable"] == "predicts no depth" and oracle["delta1"]["n"] > 0
    assert summary["failures"]["identity"] == []


def test_index_pairs_on_jittered_disn_views(tmp_path):
    """DISN-like jittered yaws: index pairs four apart are 40 +- 10 degrees apart; exact pairs are rare."""
    from bench.protocol import IndexPairs, azimuth_deg

    root = DepthPairsSet(objects=2, views=36, size=16, jitter_deg=5.0, seed=1).generate(tmp_path / "set")
    reader = DISNReader(root, size=16)
    pairs = list(IndexPairs(4).samples(reader))
    assert len(pairs) == 2 * 36 * 2
    diffs = [abs((azimuth_deg(reader.pose(p.scene, p.target_views[0])) - azimuth_deg(reader.pose(p.scene, p.source_views[0])) + 180) % 360 - 180)
             for p in pairs]
    assert all(30 - 1e-6 <= d <= 50 + 1e-6 for d in diffs) and 35 < sum(diffs) / len(diffs) < 45
    assert sum(1 for _ in AzimuthPairs(40.0, exact=True).samples(reader)) < len(pairs) / 3
