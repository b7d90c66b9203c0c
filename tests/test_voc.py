"""PASCAL VOC segmentation: the reader on a hand-made fixture, the synthetic VOC-layout generator, and the suites."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import synth
from bench.data import synth_segmentation as seg
from bench.data.voc import VOCReader
from bench.errors import ConfigError

PROJECT = Path(__file__).resolve().parent.parent

# Two hand-drawn label maps of different sizes (VOC classes: 7 car, 15 person; 255 void).
LABELS_A = np.array(
    [
        [0, 0, 0, 0, 0],
        [0, 15, 15, 255, 0],
        [0, 15, 15, 255, 0],
        [0, 0, 0, 0, 0],
    ],
    dtype=np.uint8,
)
LABELS_B = np.array(
    [
        [7, 7, 255, 0],
        [7, 7, 255, 0],
        [255, 255, 0, 0],
    ],
    dtype=np.uint8,
)
# A palette whose colours are nothing like the indices: index i is (255 - i, 3 i mod 256, 7).
ODD_PALETTE = [c for i in range(256) for c in (255 - i, (3 * i) % 256, 7)]


def write_labels(path: Path, labels: np.ndarray, palette: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
    img.putpalette(palette)
    img.save(path)


def write_image(path: Path, height: int, width: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path, format="JPEG")


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    """VOCdevkit/VOC2012 with two val images (4x5 and 3x4) and one train image."""
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for i, (name, labels) in enumerate((("2007_000032", LABELS_A), ("2008_000123", LABELS_B), ("2009_000001", LABELS_B))):
        write_image(root / "JPEGImages" / f"{name}.jpg", *labels.shape, seed=i)
        write_labels(root / "SegmentationClass" / f"{name}.png", labels, ODD_PALETTE)
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "val.txt").write_text("2007_000032\n2008_000123\n")
    (lists / "train.txt").write_text("2009_000001\n")
    return root


# --------------------------------------------------------------------------- reader


def test_reader_views_labels_and_placeholder_cameras(voc_root: Path) -> None:
    reader = VOCReader(voc_root)
    assert reader.scenes() == ["val"] and reader.view_ids("val") == ["2007_000032", "2008_000123"]
    assert reader.provides == {"source_seg"} and reader.classes[15] == "person"
    view = reader.load_view("val", "2008_000123")
    assert view.id == "2008_000123" and view.image.shape == (3, 3, 4) and view.seg.dtype == torch.int64
    # palette indices, not colours: the odd palette would give other values if colours were read
    assert view.seg.tolist() == LABELS_B.tolist()
    assert torch.equal(view.cam2world, torch.eye(4)) and torch.equal(reader.pose("val", "2008_000123"), torch.eye(4))
    assert view.K.tolist() == [[4.0, 0.0, 1.5], [0.0, 4.0, 1.0], [0.0, 0.0, 1.0]]  # f = max(H, W), centre ((W-1)/2, (H-1)/2)
    assert VOCReader(voc_root, split="train").view_ids("train") == ["2009_000001"]


def test_reader_resize_keeps_labels_nearest(voc_root: Path) -> None:
    view = VOCReader(voc_root, size=(8, 10)).load_view("val", "2007_000032")
    assert view.image.shape == (3, 8, 10) and view.seg.shape == (8, 10)
    assert torch.equal(view.seg, torch.from_numpy(LABELS_A.astype(np.int64)).repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert view.K[0, 0] == 10 and view.K[0, 2] == 4.5 and view.K[1, 2] == 3.5


def test_reader_does_not_touch_disk_before_scenes(tmp_path: Path) -> None:
    reader = VOCReader(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"nowhere/ImageSets/Segmentation/val.txt"):
        reader.scenes()


@pytest.mark.parametrize("missing", ["JPEGImages/2008_000123.jpg", "SegmentationClass/2008_000123.png"])
def test_missing_image_or_label_names_the_path(voc_root: Path, missing: str) -> None:
    (voc_root / missing).unlink()
    with pytest.raises(ConfigError, match=re.escape(f"file not found: {voc_root / missing}")):
        VOCReader(voc_root).scenes()


def test_size_mismatch_names_both_files(voc_root: Path) -> None:
    write_labels(voc_root / "SegmentationClass" / "2007_000032.png", LABELS_B, ODD_PALETTE)
    with pytest.raises(ConfigError) as err:
        VOCReader(voc_root).load_view("val", "2007_000032")
    assert str(voc_root / "SegmentationClass" / "2007_000032.png") in str(err.value)
    assert str(voc_root / "JPEGImages" / "2007_000032.jpg") in str(err.value)


def test_duplicate_id_and_foreign_label_are_errors(voc_root: Path) -> None:
    (voc_root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000032\n2008_000123\n2007_000032\n")
    with pytest.raises(ConfigError, match=r"val.txt:3"):
        VOCReader(voc_root).scenes()
    write_labels(voc_root / "SegmentationClass" / "2008_000123.png", np.where(LABELS_B == 7, 21, LABELS_B).astype(np.uint8), ODD_PALETTE)
    with pytest.raises(ConfigError, match=r"2008_000123.png holds values \[21\]"):
        VOCReader(voc_root).load_view("val", "2008_000123")


def test_background_miou_by_hand_through_the_cli(cli, voc_root: Path, tmp_path: Path) -> None:
    """Image A: 18 valid pixels, 14 background + 4 person; image B: 8 valid, 4 background + 4 car.

    Predicting background everywhere: IoU_bg = 18 / 26 (all 26 valid pixels predicted
    background), IoU_person = IoU_car = 0, the other 18 classes absent; mIoU = (18/26) / 3,
    pixel accuracy = 18 / 26.
    """
    code, out, err = cli("run", PROJECT / "suites" / "voc.yaml", "--data-root", voc_root, "--out", tmp_path / "res", "--no-progress")
    assert code == 0, err
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["n_samples"] == 2 and summary["primary_metric"] == "miou"
    miou = summary["results"]["background"]["miou"]
    assert miou["mean"] == pytest.approx(18 / 26 / 3)
    per_class = miou["details"]["per_class_iou"]
    assert per_class["background"] == pytest.approx(18 / 26) and per_class["person"] == 0 and per_class["car"] == 0
    assert sum(v is not None for v in per_class.values()) == 3
    assert summary["results"]["background"]["pixel_acc"]["mean"] == pytest.approx(18 / 26)


def test_missing_list_file_exits_2_naming_it(cli, voc_root: Path, tmp_path: Path) -> None:
    (voc_root / "ImageSets" / "Segmentation" / "val.txt").unlink()
    code, _, err = cli("run", PROJECT / "suites" / "voc.yaml", "--data-root", voc_root, "--out", tmp_path / "res", "--no-progress")
    assert code == 2 and str(voc_root / "ImageSets" / "Segmentation" / "val.txt") in err


# --------------------------------------------------------------------------- generator

SMALL = seg.SegmentationSet(images=4, train_images=2, size=48, void_px=1, seed=3)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return SMALL.generate(tmp_path_factory.mktemp("vocsyn") / "set")


def test_colormap_entries_by_hand() -> None:
    cmap = seg.voc_colormap()
    assert cmap.shape == (256, 3) and cmap.dtype == np.uint8
    by_hand = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 7: (128, 128, 128), 8: (64, 0, 0),
               15: (192, 128, 128), 20: (0, 64, 128), 255: (224, 224, 192)}  # fmt: skip
    for index, rgb in by_hand.items():
        assert tuple(cmap[index]) == rgb, index
    assert len({tuple(c) for c in cmap}) == 256  # every index has its own colour


def test_generated_layout_and_lists(generated: Path) -> None:
    ids = [f"2007_{i:06d}" for i in range(6)]
    lists = generated / "ImageSets" / "Segmentation"
    assert (lists / "val.txt").read_text() == "".join(f"{i}\n" for i in ids[:4])
    assert (lists / "train.txt").read_text() == "".join(f"{i}\n" for i in ids[4:])
    assert (lists / "trainval.txt").read_text().split() == ids
    assert sorted(p.name for p in (generated / "JPEGImages").iterdir()) == [f"{i}.jpg" for i in ids]
    assert sorted(p.name for p in (generated / "SegmentationClass").iterdir()) == [f"{i}.png" for i in ids]
    assert json.loads((generated / "synth.json").read_text()) == SMALL.params()
    for index, name in enumerate(ids):
        image, labels = Image.open(generated / "JPEGImages" / f"{name}.jpg"), Image.open(generated / "SegmentationClass" / f"{name}.png")
        assert image.format == "JPEG" and image.mode == "RGB" and labels.mode == "P"
        portrait = index % 3 == 2
        assert labels.size == image.size == ((36, 48) if portrait else (48, 36))  # PIL sizes are (W, H)
        palette = np.array(labels.getpalette()).reshape(-1, 3)
        assert (palette[:21] == seg.voc_colormap()[:21]).all() and tuple(palette[255]) == (224, 224, 192)


def test_generated_labels_are_parts_with_void_between_classes(generated: Path) -> None:
    reader = VOCReader(generated, split="trainval")
    for index, name in enumerate(reader.view_ids("trainval")):
        labels = reader.load_view("trainval", name).seg.numpy()
        present = set(np.unique(labels).tolist())
        assert present <= seg.LABELS and {0, 255} <= present
        assert present & ({7, 6} if index % 2 == 0 else {9, 18})  # car body/cabin or chair seat/back is visible
        # void_px = 1: two 8-neighbours of different classes are both void, so non-void neighbours agree
        for a, b in ((labels[1:, :], labels[:-1, :]), (labels[:, 1:], labels[:, :-1]), (labels[1:, 1:], labels[:-1, :-1]),
                     (labels[1:, :-1], labels[:-1, 1:])):  # fmt: skip
            both = (a != 255) & (b != 255)
            assert (a[both] == b[both]).all()


def test_void_band_width() -> None:
    labels = np.zeros((5, 8), np.uint8)
    labels[:, 4:] = 7
    assert (seg.void_band(labels, 0) == labels).all()
    assert (seg.void_band(labels, 1)[:, 3:5] == 255).all() and (seg.void_band(labels, 1) != 255).sum() == 5 * 6
    assert (seg.void_band(labels, 2)[:, 2:6] == 255).all() and (seg.void_band(labels, 2) != 255).sum() == 5 * 4


@pytest.mark.parametrize("index", [0, 1])
def test_part_classes_follow_the_mesh_geometry(index: int) -> None:
    """Independent of face order bookkeeping: wheels / legs hold the lowest vertex, the cabin / back the highest."""
    mesh = synth.object_mesh(index, 5)
    classes = seg.face_classes(index, 5)
    verts, faces = mesh.verts_packed(), mesh.faces_packed()
    assert len(classes) == len(faces)
    low, high = (faces == verts[:, 2].argmin()).any(1), (faces == verts[:, 2].argmax()).any(1)
    lowest, highest = (2, 6) if index % 2 == 0 else (11, 18)
    assert set(classes[low].tolist()) == {lowest} and set(classes[high].tolist()) == {highest}


def test_generation_is_deterministic(generated: Path, tmp_path: Path) -> None:
    again = SMALL.generate(tmp_path / "again")
    files = sorted(p.relative_to(generated) for p in generated.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((generated / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_bad_generator_parameter_names_it() -> None:
    with pytest.raises(ConfigError, match="'void_px' must be at least 0"):
        seg.SegmentationSet(void_px=-1)


def test_synthetic_suite_one_sample_per_val_id(cli, tmp_path: Path) -> None:
    root = tmp_path / "voc_synthetic"
    code, out, err = cli("run", PROJECT / "suites" / "voc_synthetic.yaml", "--data-root", root, "--out", tmp_path / "res", "--no-progress")
    assert code == 0, err
    val = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    assert len(val) == 12 and len(set(val)) == 12
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["n_samples"] == 12 and not any(summary["failures"].values())
    with sqlite3.connect(tmp_path / "res" / "results.sqlite") as db:
        samples = [s for (s,) in db.execute("SELECT sample FROM scores WHERE metric = 'miou' ORDER BY sample")]
    assert samples == [f"val/{i}" for i in sorted(val)]
    per_class = summary["results"]["background"]["miou"]["details"]["per_class_iou"]
    present = {name for name, iou in per_class.items() if iou is not None}
    assert {"background", "car", "chair"} <= present <= {"background", "bicycle", "bus", "car", "chair", "diningtable", "sofa"}
    assert summary["results"]["background"]["miou"]["mean"] == pytest.approx(per_class["background"] / len(present))
