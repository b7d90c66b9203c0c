"""The bad-input matrix: every hostile or broken input is a clear error or a recorded per-sample failure.

Policy (docs/ARCHITECTURE.md, "Bad inputs"): what can be known before the first sample (config,
names, a missing or empty dataset, camera files parsed when listing samples, the checkpoint) is an
error before the run starts: exit code 2 and one line naming ``file:line`` or the file. What is
discovered while loading one sample (a corrupt image, a bad per-view pose, a view of the wrong
size) or in one sample's prediction (NaN, wrong shape, values outside [0, 1]) is a failure of that
sample, recorded with its reason; ``nvsbench data check`` reports the data problems up front.

Rows, with the tests that cover them (here unless a file is named):

1. Corrupt or truncated PNG (image, depth, label):
   ``test_single_bit_flips_never_decode_silently``, ``test_unusable_view_fails_only_its_samples``,
   ``test_a_bad_source_view_fails_every_sample_that_uses_it``, ``test_data_check_lists_every_problem``,
   ``test_a_run_records_an_unreadable_sample_and_scores_it_once_fixed`` (through ``nvsbench run``); elsewhere:
   test_srn.py::test_data_check_reports_and_names_bad_files (truncated RGB in ``data check``),
   test_score.py::test_score_errors_name_the_file (truncated PNG in ``score``).
2. Pose file with 15 numbers: ``test_unusable_view_fails_only_its_samples`` (SRN, in a run); elsewhere:
   test_srn.py::test_data_check_reports_and_names_bad_files (SRN, 15 numbers),
   test_re10k.py::test_malformed_camera_line_names_file_and_line (RE10K line without 19 numbers, file:line),
   test_pose_radius.py::test_bad_transform_names_file_and_frame (NeRF transforms: a 3x4 matrix).
3. Non-orthonormal rotation: ``test_unusable_view_fails_only_its_samples`` (SRN, in a run),
   ``test_re10k_rotation_that_is_not_orthonormal_names_file_and_line``; elsewhere:
   test_srn.py::test_data_check_reports_and_names_bad_files (SRN, ``data check``),
   test_pose_radius.py::test_bad_transform_names_file_and_frame (NeRF transforms: stretched, det -1).
4. Wrong image size: ``test_unusable_view_fails_only_its_samples`` (against the intrinsics, depth of
   another size), ``test_sources_of_different_sizes_fail_their_sample``, ``test_blender_w_h_must_match_the_image``;
   elsewhere: test_voc.py::test_size_mismatch_names_both_files (label map vs image),
   test_score.py::test_score_errors_name_the_file (prediction vs ground truth).
5. Empty dataset folder: ``test_empty_dataset_folder_is_an_error_naming_it`` (every reader); elsewhere:
   test_srn.py::test_data_check_reports_and_names_bad_files (``data check``),
   test_config.py::test_missing_dataset_folder_is_a_clear_error (no folder at all).
6. YAML built to blow up: ``test_billion_laughs_is_refused_quickly_in_little_memory``,
   ``test_deep_nesting_is_refused_without_recursion_error``; elsewhere: test_config.py::test_aliases_are_refused.
7. Checkpoint with pickled code: ``test_checkpoint_with_pickled_code_is_refused_and_never_runs``;
   elsewhere: test_checkpoint.py::test_pickled_code_is_refused_and_never_runs, test_checkpoint.py::test_missing_and_corrupt.
8. Unknown metric name: ``test_unknown_metric_elsewhere_suggests_the_closest``; elsewhere:
   test_config.py::test_suite_errors_name_file_line_value_and_suggestion (``metrics:``, file:line),
   test_score.py::test_score_errors_name_the_file (``score --metrics``).
9. Pipeline output with NaN, wrong shape, values outside [0, 1]: ``test_check_prediction_refuses``,
   ``test_range_tolerance_is_clamped_and_beyond_it_fails``, ``test_bad_predictions_are_recorded_failures_in_a_run``;
   elsewhere: test_runner.py::test_adapter_failures_are_recorded_and_the_run_goes_on (an adapter raising, NaN).
10. Names with HTML or shell characters: ``test_hostile_names_are_kept_as_text``,
    ``test_names_that_would_leave_the_results_folder_are_refused``; elsewhere:
    test_leaderboard.py::test_text_from_configs_results_and_published_file_is_escaped,
    test_leaderboard.py::test_site_from_a_real_run (an ``<img onerror>`` pipeline through a run and the site),
    test_leaderboard_browser.py::test_a_hostile_pipeline_name_is_text.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import time
import tracemalloc
from html import unescape
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.config import Doc, apply_overrides, load_yaml
from bench.data.blender import BlenderReader
from bench.data.io import read_depth_mm, read_labels, read_rgb
from bench.data.re10k import RE10KReader
from bench.errors import ConfigError
from bench.runner.execute import RANGE_TOLERANCE, check_prediction
from bench.runner.plan import SampleLoader, batches
from bench.suite import load_suite
from bench.types import Prediction, Sample, SampleSpec, View
from tests.conftest import write_adapters, write_suite

N_SAMPLES = 3 * 5  # the tiny suite: 3 objects x (6 views - source view 0)


@pytest.fixture
def objects(tmp_path, objects_root) -> Path:
    """A copy of the session's tiny object set that a test may break."""
    return Path(shutil.copytree(objects_root, tmp_path / "objs"))


def one_error_line(err: str) -> str:
    """The CLI's error output, checked to be one line."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nvsbench: error: "), err
    return lines[0]


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


def write_pose(path: Path, numbers: list[float]) -> None:
    path.write_text(" ".join(map(str, numbers)) + "\n")


def stretch_y(path: Path) -> None:
    """Scale the camera's y axis by 2: not a rotation any more."""
    m = np.array(path.read_text().split(), dtype=float).reshape(4, 4)
    m[:3, 1] *= 2
    write_pose(path, m.ravel().tolist())


def resize(path: Path, size: tuple[int, int]) -> None:
    """Rewrite an image at (W, H) = ``size``, keeping its mode."""
    Image.open(path).resize(size).save(path)


# --------------------------------------------------------------------------- 1-4: unusable views


def test_single_bit_flips_never_decode_silently(tmp_path):
    """Every single-bit flip of an RGB, a 16-bit depth and a palette label PNG is an error naming the file, or
    decodes to the very same pixels. Before PNG chunk checksums were verified, 23 of the 1944 flips of this
    label map decoded to other labels without an error."""
    rng = np.random.default_rng(0)
    labels = Image.fromarray(rng.integers(0, 21, (12, 12), dtype=np.uint8), mode="L").convert("P")
    labels.putpalette([c for i in range(21) for c in (i, 10 * i, 255 - i)])
    cases = [
        (Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)), read_rgb),
        (Image.fromarray(rng.integers(0, 60000, (6, 6), dtype=np.uint16)), read_depth_mm),
        (labels, read_labels),
    ]
    path = tmp_path / "x.png"
    for image, read in cases:
        image.save(path)
        clean, expected = path.read_bytes(), read(path)
        flips = [(byte, bit) for byte in range(len(clean)) for bit in range(8)]
        errors = 0
        with path.open("r+b") as f:  # flipped in place: recreating the file costs ~4 ms a time here
            for byte, bit in flips:
                os.pwrite(f.fileno(), bytes([clean[byte] ^ (1 << bit)]), byte)
                try:
                    got = read(path)
                except ConfigError as exc:
                    assert str(path) in str(exc)
                    errors += 1
                    continue
                finally:
                    os.pwrite(f.fileno(), clean[byte : byte + 1], byte)
                assert torch.equal(got, expected), f"{read.__name__}: bit {bit} of byte {byte} decoded silently to other pixels"
        assert errors > 0.8 * len(flips)


BROKEN_TARGET = "000002"  # a target view of car_0000: only the sample car_0000/000000-000002 uses it


@pytest.mark.parametrize(
    "break_view, message",
    [
        (lambda obj: truncate(obj / "rgb" / f"{BROKEN_TARGET}.png"), "cannot decode image {obj}/rgb/000002.png"),
        (lambda obj: truncate(obj / "depth" / f"{BROKEN_TARGET}.png"), "cannot decode image {obj}/depth/000002.png"),
        (lambda obj: (obj / "depth" / f"{BROKEN_TARGET}.png").unlink(), "file not found: {obj}/depth/000002.png"),
        (lambda obj: write_pose(obj / "pose" / f"{BROKEN_TARGET}.txt", [0.0] * 15), "found 15: {obj}/pose/000002.txt"),
        (lambda obj: stretch_y(obj / "pose" / f"{BROKEN_TARGET}.txt"), "scene 'car_0000' view '000002': camera rotation is not orthonormal"),
        (lambda obj: resize(obj / "rgb" / f"{BROKEN_TARGET}.png", (32, 24)),
         "image {obj}/rgb/000002.png is 24x32 (H x W), not a scaled copy of the 32x32 that {obj}/intrinsics.txt describes"),
        (lambda obj: resize(obj / "depth" / f"{BROKEN_TARGET}.png", (16, 16)),
         "scene 'car_0000' view '000002': depth is (16, 16) (H, W), its image is (32, 32)"),
    ],
    ids=["truncated_rgb", "truncated_depth", "missing_depth", "pose_15_numbers", "pose_not_orthonormal", "image_vs_intrinsics",
         "depth_size"],
)
def test_unusable_view_fails_only_its_samples(tmp_path, objects, break_view, message):
    """A bad target view fails its one sample, recorded as (sample, "load", reason); the other 14 still load and
    batch. Without a failures list the loader's error propagates (the CLI's exit 2)."""
    obj = objects / "car_0000"
    break_view(obj)
    suite = load_suite(write_suite(tmp_path, objects))
    specs = list(suite.protocol.samples(suite.reader))
    failures: list = []
    loaded = [s.id for batch in batches(specs, SampleLoader(suite.reader), 4, failures) for s in batch]
    assert loaded == [s.id for s in specs if s.id != f"car_0000/000000-{BROKEN_TARGET}"]
    assert len(failures) == 1
    sample, what, error = failures[0]
    assert (sample, what) == (f"car_0000/000000-{BROKEN_TARGET}", "load")
    assert message.format(obj=obj) in error and "\n" not in error
    with pytest.raises(ConfigError, match="car_0000"):
        list(batches(specs, SampleLoader(suite.reader), 4))


def test_a_run_records_an_unreadable_sample_and_scores_it_once_fixed(cli, tmp_path, objects):
    """Through ``nvsbench run``: the sample with a truncated target image is a ``load`` failure (n = 14, the
    run goes on); after the file is restored, a rerun scores that sample alone and forgets the failure."""
    image = objects / "car_0000" / "rgb" / f"{BROKEN_TARGET}.png"
    clean = image.read_bytes()
    truncate(image)
    suite, out = write_suite(tmp_path, objects, pipelines="pipelines: [identity]"), tmp_path / "out"
    code, _, err = cli("run", suite, "--out", out, "--no-progress")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["results"]["identity"]["psnr"]["n"] == N_SAMPLES - 1
    [failure] = summary["failures"]["identity"]
    assert failure["sample"] == f"car_0000/000000-{BROKEN_TARGET}"
    assert failure["error"].startswith(f"load: cannot decode image {image}")
    image.write_bytes(clean)
    code, _, err = cli("run", suite, "--out", out, "--no-progress")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["results"]["identity"]["psnr"]["n"] == N_SAMPLES and summary["failures"]["identity"] == []
    with sqlite3.connect(out / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM failures").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT sample) FROM scores WHERE metric = 'psnr'").fetchone() == (N_SAMPLES, N_SAMPLES)


def test_a_bad_source_view_fails_every_sample_that_uses_it(tmp_path, objects):
    truncate(objects / "chair_0001" / "rgb" / "000000.png")
    suite = load_suite(write_suite(tmp_path, objects))
    failures: list = []
    loaded = [s.id for batch in batches(list(suite.protocol.samples(suite.reader)), SampleLoader(suite.reader), 4, failures) for s in batch]
    assert len(loaded) == N_SAMPLES - 5 and not any(i.startswith("chair_0001/") for i in loaded)
    assert sorted(f[0] for f in failures) == [f"chair_0001/000000-00000{v}" for v in range(1, 6)]


def test_sources_of_different_sizes_fail_their_sample(tmp_path, objects):
    """Two sources must stack: a half-size copy of source view 1 (its K scales correctly) still fails the samples."""
    for kind in ("rgb", "depth", "mask"):
        resize(objects / "car_0000" / kind / "000001.png", (16, 16))
    suite = load_suite(write_suite(tmp_path, objects, protocol="protocol: {kind: source_targets, sources: [0, 1]}"))
    specs = list(suite.protocol.samples(suite.reader))
    failures: list = []
    loaded = [s.id for batch in batches(specs, SampleLoader(suite.reader), 4, failures) for s in batch]
    assert len(loaded) == 3 * 4 - 4 and len(failures) == 4
    assert all("its source views differ in size (H x W: 000000 32x32, 000001 16x16)" in f[2] for f in failures)


def test_a_target_without_valid_ground_truth_is_not_applicable_not_a_failure(cli, tmp_path, objects):
    """A depth map of zeros (no valid pixel) is the dataset's gap: data check names it, the run leaves it out of
    the depth metrics (and of the failures), and scores the image metrics of the same sample as usual."""
    Image.fromarray(np.zeros((32, 32), np.uint16)).save(objects / "chair_0001" / "depth" / "000002.png")
    suite = write_suite(tmp_path, objects, metrics="metrics: [l1, abs_rel]")
    code, stdout, err = cli("data", "check", suite, "--no-progress")
    assert code == 0, err
    assert "1 target views has no valid ground-truth depth: not applicable to the metrics that need it, e.g. chair_0001/000002" in stdout
    out = tmp_path / "out"
    code, stdout, err = cli("run", suite, "--out", out, "--no-progress")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    oracle = summary["results"]["oracle_reproject"]
    assert oracle["l1"]["n"] == 15 and oracle["abs_rel"]["n"] == 14 and oracle["depth_coverage"]["n"] == 14
    assert oracle["abs_rel"]["not_applicable"] == {"n": 1, "reason": "has no valid ground-truth depth", "first": "chair_0001/000000-000002"}
    assert summary["failures"]["oracle_reproject"] == []
    assert "oracle_reproject abs_rel, depth_coverage: not applicable to 1 samples whose target has no valid ground-truth depth" in stdout
    code, stdout, _ = cli("run", suite, "--out", out, "--no-progress")  # resume: nothing left to score
    assert code == 0 and json.loads((out / "summary.json").read_text())["results"] == summary["results"]


def test_data_check_lists_every_problem(cli, tmp_path, objects):
    """Up front, in one line: the number of problems and each file (a run would record their samples as failures)."""
    suite = write_suite(tmp_path, objects)
    truncate(objects / "car_0000" / "rgb" / "000003.png")
    stretch_y(objects / "car_0002" / "pose" / "000004.txt")
    code, _, err = cli("data", "check", suite, "--no-progress")
    line = one_error_line(err)
    assert code == 2 and "2 problems in the 18 views and 15 samples the protocol uses" in line
    assert f"cannot decode image {objects / 'car_0000' / 'rgb' / '000003.png'}" in line
    assert "scene 'car_0002' view '000004': camera rotation is not orthonormal" in line


def test_re10k_rotation_that_is_not_orthonormal_names_file_and_line(tmp_path):
    cameras = tmp_path / "test" / "0123456789abcdef.txt"
    cameras.parent.mkdir(parents=True)
    good = "0.5 0.8 0.5 0.5 0 0  1 0 0 0  0 1 0 0  0 0 1 0"
    sheared = "0.5 0.8 0.5 0.5 0 0  1 0.3 0 0  0 1 0 0  0 0 1 0"
    cameras.write_text(f"https://www.youtube.com/watch?v=x\n1000 {good}\n2000 {sheared}\n")
    with pytest.raises(ConfigError) as err:
        RE10KReader(tmp_path).view_ids("0123456789abcdef")
    assert str(err.value).startswith(f"{cameras}:3: the camera line's 3x3 rotation is not orthonormal (max |RᵀR − I| = 0.3")


def test_blender_w_h_must_match_the_image(tmp_path):
    """nerfstudio's w / h give the image size its pixel intrinsics refer to; a stored image of another size is an error."""
    folder = tmp_path / "obj"
    (folder / "test").mkdir(parents=True)
    frame = {"file_path": "./test/r_0", "transform_matrix": np.eye(4).tolist(), "fl_x": 20.0, "w": 40, "h": 30}
    (folder / "transforms_test.json").write_text(json.dumps({"frames": [frame]}))
    Image.new("RGBA", (20, 15)).save(folder / "test" / "r_0.png")
    reader = BlenderReader(folder)
    reader.scenes()
    with pytest.raises(ConfigError, match=r"image of frame r_0 is 20x15 \(W x H\) but the transforms file gives w = 40"):
        reader.load_view("obj", "r_0")


def test_dataset_files_named_outside_the_dataset_root_are_refused(tmp_path):
    """A transforms file, a VOC list or a triplets protocol naming a path with '..' out of the root is an error, not a read."""
    from bench.data.voc import VOCReader
    from bench.protocol import Triplets

    secret = tmp_path / "secret.png"
    Image.new("RGBA", (4, 4)).save(secret)
    folder = tmp_path / "data" / "obj"
    folder.mkdir(parents=True)
    frame = {"file_path": "../../secret", "transform_matrix": np.eye(4).tolist(), "fl_x": 2.0}
    (folder / "transforms_test.json").write_text(json.dumps({"frames": [frame]}))
    with pytest.raises(ConfigError, match=r"transforms_test.json: frame 0: file_path: .*secret.png is outside the dataset root"):
        reader = BlenderReader(folder)
        reader.view_ids(reader.scenes()[0])
    voc = tmp_path / "voc"
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("../../secret\n")
    with pytest.raises(ConfigError, match=r"val.txt:1: .*secret.jpg is outside the dataset root"):
        VOCReader(voc).scenes()
    with pytest.raises(ConfigError, match=r"triplets protocol: in_root: .*triplets.txt is outside the dataset root"):
        list(Triplets(in_root="../triplets.txt").samples(VOCReader(voc)))
    inside = folder / "test"
    inside.mkdir()
    Image.new("RGBA", (4, 4)).save(inside / "r_0.png")
    frame["file_path"] = "./test/../test/r_0"  # '..' that stays inside is fine
    (folder / "transforms_test.json").write_text(json.dumps({"frames": [frame]}))
    reader = BlenderReader(folder)
    assert reader.load_view(reader.scenes()[0], "r_0").size == (4, 4)


# --------------------------------------------------------------------------- 5: empty dataset folder


@pytest.mark.parametrize(
    "reader, protocol, message",
    [
        ("srn", "source_targets", "no objects (folders with rgb/) in dataset folder {root}"),
        ("re10k", "source_targets", "dataset folder not found: {root}/test"),
        ("blender", "source_targets", "transforms file not found: {root}/transforms_test.json"),
        ("voc", "each_view", "VOC image list not found: {root}/ImageSets/Segmentation/val.txt"),
        ("disn", "index_pairs", "DISN category folder not found: {root}/image/02958343"),
    ],
)
def test_empty_dataset_folder_is_an_error_naming_it(cli, tmp_path, reader, protocol, message):
    root = tmp_path / "empty"
    root.mkdir()
    suite = write_suite(tmp_path, root, dataset=f"dataset: {{reader: {reader}, root: {root}}}", protocol=f"protocol: {{kind: {protocol}}}",
                        metrics="metrics: [psnr]", pipelines="pipelines: [identity]")
    code, _, err = cli("run", suite, "--out", tmp_path / "out", "--no-progress")
    assert code == 2 and message.format(root=root) in one_error_line(err)
    assert list(root.iterdir()) == []


# --------------------------------------------------------------------------- 6: YAML built to blow up


def billion_laughs() -> str:
    """Ten levels of nine aliases each: 9**9 copies of 'lol' (over 3 GB as Python strings) if expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "name: laughs\n" + "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_quickly_in_little_memory(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ConfigError, match=f"{bomb}:3: YAML anchors and aliases are not supported"):
            load_yaml(bomb)
        with pytest.raises(ConfigError, match="--set x=.*: YAML anchors and aliases"):
            apply_overrides(Doc({}, {}), ["x=[&a [lol, lol], [*a, *a], [*a, *a]]"])
        seconds, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 1.0 and peak < 2e6  # measured: 2 ms and 0.02 MB


@pytest.mark.parametrize("text", ["a: " + "[" * 100_000 + "]" * 100_000, "".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + "  " * 200 + "v: 1"])
def test_deep_nesting_is_refused_without_recursion_error(tmp_path, text):
    deep = tmp_path / "deep.yaml"
    deep.write_text(text + "\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"{deep}:\d+: YAML nested deeper than 64 levels"):
        load_yaml(deep)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(("value", "tag"), [
    ("!!python/object/apply:os.system ['touch {marker}']", "!!python/object/apply:os.system"),  # on a sequence
    ("!!python/name:os.system", "!!python/name:os.system"),  # on a scalar: was a 30-line traceback
    ("!!python/object:bench.types.View {{id: x}}", "!!python/object:bench.types.View"),  # on a mapping: was silently ignored
    ("!!set {{a, b}}", "!!set"),
    ("!custom 3", "!custom"),
])
def test_a_non_standard_yaml_tag_is_a_one_line_error_naming_file_and_line(cli, tmp_path, tiny_suite, value, tag):
    marker = tmp_path / "pwned"
    suite = tmp_path / "tagged.yaml"
    suite.write_text(f"include: {tiny_suite}\nname: tagged\nbatch_size: 2\nextra: {value.format(marker=marker)}\n")
    code, _, err = cli("run", suite, "--out", tmp_path / "out", "--no-progress")
    assert code == 2 and one_error_line(err).startswith(f"nvsbench: error: {suite}:4: YAML tag {tag} is not supported")
    assert not marker.exists() and not (tmp_path / "out").exists()
    code, _, err = cli("run", tiny_suite, "--set", f"batch_size={value.format(marker=marker)}", "--out", tmp_path / "out", "--no-progress")
    assert code == 2 and f"YAML tag {tag} is not supported" in one_error_line(err)


# --------------------------------------------------------------------------- 7: checkpoint with pickled code


class _RunsShell:
    """Unpickling this runs ``touch MARKER`` through os.system: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def test_checkpoint_with_pickled_code_is_refused_and_never_runs(cli, tmp_path, tiny_suite):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "model_digest": "x", "hook": _RunsShell(marker)}, evil)
    pipe = tmp_path / "evil.yaml"
    pipe.write_text(f"name: evil\nstages:\n  - stage: copy_source\ncheckpoint: {evil}\n")
    for args in (("validate", pipe), ("run", tiny_suite, "--pipeline", pipe, "--out", tmp_path / "out", "--no-progress")):
        code, _, err = cli(*args)
        line = one_error_line(err)
        assert code == 2 and f"cannot load checkpoint {evil}: it refers to posix.system" in line and "weights_only=True" in line
        assert not marker.exists()
    torch.load(evil, weights_only=False)  # the control: loading it the unsafe way does run the payload
    assert marker.exists()


# --------------------------------------------------------------------------- 8: unknown metric name


@pytest.mark.parametrize(
    "args, message",
    [
        (("run", "{suite}", "--set", "primary_metric=pnsr"), "--set primary_metric=pnsr: unknown primary metric 'pnsr' (did you mean 'psnr'?)"),
        (("run", "{suite}", "--set", "metrics=[psnr, lpips_vg]"),
         "--set metrics=[psnr, lpips_vg]: unknown metric 'lpips_vg' (did you mean 'lpips_vgg'?)"),
        (("score-poses", "--pred", "{poses}", "--gt", "{poses}", "--metrics", "rot_err"),
         "--metrics: unknown metric 'rot_err' (did you mean 'rot_err_deg'?)"),
    ],
)
def test_unknown_metric_elsewhere_suggests_the_closest(cli, tiny_suite, tmp_path, args, message):
    """Beyond a suite's ``metrics:`` and ``score --metrics``: the primary metric, ``--set`` and ``score-poses``."""
    (tmp_path / "poses.json").write_text("{}")
    code, _, err = cli(*(a.format(suite=tiny_suite, poses=tmp_path / "poses.json") for a in args))
    assert code == 2 and one_error_line(err).endswith(message)


# --------------------------------------------------------------------------- 9: bad pipeline outputs


def _sample(targets: int = 1, h: int = 4, w: int = 5) -> Sample:
    view = View("v", torch.zeros(3, h, w), torch.eye(3), torch.eye(4))
    return Sample(SampleSpec("s/v", "s", ("v",), ("v",) * targets), [view], [view] * targets)


def _grey(*shape: int, value: float = 0.5, **kw) -> Prediction:
    return Prediction(torch.full(shape, value), **kw)


@pytest.mark.parametrize(
    "pred, message",
    [
        (Prediction(torch.full((1, 1, 3, 4, 5), 0.5).index_put_((torch.tensor(0),) * 5, torch.tensor(float("nan")))),
         "prediction image contains 1 NaN or infinite values"),
        (_grey(1, 2, 3, 4, 5, value=float("inf")), "contains 120 NaN or infinite values"),
        (_grey(1, 3, 4, 5), "prediction image has shape (1, 3, 4, 5), expected (1, D, 3, 4, 5) with D >= 1"),
        (_grey(1, 1, 3, 5, 4), "has shape (1, 1, 3, 5, 4), expected (1, D, 3, 4, 5)"),
        (_grey(1, 0, 3, 4, 5), "has shape (1, 0, 3, 4, 5)"),
        (_grey(2, 1, 3, 4, 5), "has shape (2, 1, 3, 4, 5)"),
        (_grey(1, 1, 3, 4, 5, value=255.0), "prediction image values span [255, 255], outside [0, 1] by more than 0.0001"),
        (Prediction(torch.linspace(-1, 1, 60).reshape(1, 1, 3, 4, 5)), "values span [-1, 1], outside [0, 1]"),
        (Prediction(torch.zeros(1, 1, 3, 4, 5, dtype=torch.uint8)), "must be a floating-point tensor in [0, 1], got a tensor of torch.uint8"),
        (Prediction(np.zeros((1, 1, 3, 4, 5), np.float32)), "got a ndarray"),
        (torch.zeros(1, 1, 3, 4, 5), "the pipeline returned a Tensor, not a Prediction"),
        (_grey(1, 2, 3, 4, 5, depth=torch.ones(1, 1, 4, 5)), "prediction depth has shape (1, 1, 4, 5), expected (1, 2, 4, 5)"),
        (_grey(1, 1, 3, 4, 5, seg=torch.zeros(1, 1, 4, 5)), "prediction seg must hold integer class labels, got torch.float32"),
        (_grey(1, 1, 3, 4, 5, poses=torch.eye(4)[None]), "prediction poses has shape (1, 4, 4), expected (1, 1, 4, 4)"),
    ],
    ids=["nan", "inf", "no_draw_axis", "h_w_swapped", "no_draws", "too_many_targets", "0_255", "minus1_1", "uint8", "numpy",
         "not_a_prediction", "depth_draws", "float_seg", "poses_shape"],
)
def test_check_prediction_refuses(pred, message):
    with pytest.raises(ValueError) as err:
        check_prediction(pred, _sample())
    assert message in str(err.value)


def test_range_tolerance_is_clamped_and_beyond_it_fails():
    """Float rounding (within 1e-4) is clamped to [0, 1]; anything further out fails the sample, never clamped."""
    assert RANGE_TOLERANCE == 1e-4
    img = torch.full((1, 1, 3, 4, 5), 0.5)
    img[..., 0, 0], img[..., 0, 1] = 1 + 5e-5, -5e-5
    checked = check_prediction(Prediction(img), _sample()).image
    assert float(checked.max()) == 1.0 and float(checked.min()) == 0.0 and float(checked[..., 1, 1].mean()) == 0.5
    img[..., 0, 0] = 1 + 2e-4
    with pytest.raises(ValueError, match="outside"):
        check_prediction(Prediction(img), _sample())


BAD_OUTPUTS = '''
import torch
from bench.adapter import Adapter
from bench.registry import register_adapter
from bench.types import Prediction


@register_adapter("bad_outputs")
class BadOutputs(Adapter):
    """By target view: 1 NaN, 2 one pixel row short, 3 values in [0, 255]; 4 and 5 a fine grey."""

    def predict(self, sample):
        t = sample.targets[0]
        h, w = t.size
        img = torch.full((1, 1, 3, h - (t.id == "000002"), w), 0.5)
        if t.id == "000001":
            img[0, 0, 1, 2, 3] = float("nan")
        if t.id == "000003":
            img *= 255
        return Prediction(img)
'''


def test_bad_predictions_are_recorded_failures_in_a_run(cli, tiny_suite, tmp_path):
    adapters = write_adapters(tmp_path / "adapters", bad=BAD_OUTPUTS)
    out = tmp_path / "out"
    code, stdout, err = cli("run", tiny_suite, "--adapters", adapters, "--pipeline", "bad_outputs", "--out", out, "--no-progress")
    assert code == 0, err
    with sqlite3.connect(out / "results.sqlite") as db:
        failed = dict(db.execute("SELECT sample, error FROM failures WHERE what = 'predict'").fetchall())
        scored = {s for (s,) in db.execute("SELECT DISTINCT sample FROM scores")}
    assert {s.rsplit("-", 1)[1] for s in failed} == {"000001", "000002", "000003"} and len(failed) == 9
    assert all(s.rsplit("-", 1)[1] in ("000004", "000005") for s in scored) and len(scored) == 6
    by_view = {s.rsplit("-", 1)[1]: e for s, e in failed.items()}
    assert "1 NaN" in by_view["000001"] and "shape (1, 1, 3, 31, 32)" in by_view["000002"] and "span [127.5, 127.5]" in by_view["000003"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["results"]["bad_outputs"]["psnr"]["n"] == 6 and len(summary["failures"]["bad_outputs"]) == 9
    assert all(row.rstrip(" |").endswith("9") for row in stdout.splitlines() if row.startswith("| bad_outputs"))


    assert "bad_outputs: first failure: " in stdout and "predict: " in stdout.split("bad_outputs: first failure: ")[1]


ALWAYS_FAILS = '''
from bench.adapter import Adapter
from bench.registry import register_adapter


@register_adapter("always_fails")
class AlwaysFails(Adapter):
    def predict(self, sample):
        raise RuntimeError("out of ideas for " + sample.id)
'''


def test_a_run_where_every_sample_of_a_pipeline_failed_exits_non_zero_with_the_reason(cli, tiny_suite, tmp_path):
    adapters = write_adapters(tmp_path / "adapters", fails=ALWAYS_FAILS)
    code, stdout, err = cli("run", tiny_suite, "--adapters", adapters, "--pipeline", "always_fails", "--pipeline", "identity",
                            "--out", tmp_path / "out", "--no-progress")
    assert code == 1 and "every sample failed for always_fails" in err
    first = next(line for line in stdout.splitlines() if line.startswith("always_fails: first failure: "))
    assert "predict: RuntimeError: out of ideas for " in first
    assert "identity: first failure" not in stdout and "| identity" in stdout  # the other pipeline still ran and is shown


# --------------------------------------------------------------------------- 10: hostile names

SUITE_NAME = """<script>alert('s')<&script> "q" 'q'; $(touch pwned_suite) && rm -rf ~ `id`"""
PIPE_NAME = """<img src=x onerror=alert(1)> $(touch pwned_pipe); echo 'q' "q" > x | cat"""


def test_hostile_names_are_kept_as_text(cli, tmp_path, objects_root, monkeypatch):
    """HTML and shell characters in suite and pipeline names: one results folder named exactly so (the
    default ``results/<suite>``), the exact names in the database and the table, escaped in the site, nothing run."""
    from bench.leaderboard.pages import build_site

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipe.yaml").write_text(f"name: {json.dumps(PIPE_NAME)}\nstages:\n  - stage: copy_source\n")
    suite = write_suite(tmp_path, objects_root, name=f"name: {json.dumps(SUITE_NAME)}", metrics="metrics: [psnr, l1]",
                        pipelines="pipelines: [pipe.yaml]")
    code, stdout, err = cli("run", suite, "--no-progress", "--visuals", "1")
    assert code == 0, err
    out = tmp_path / "results" / SUITE_NAME
    assert list((tmp_path / "results").iterdir()) == [out]
    assert [p.name for p in (out / "visuals").iterdir()] == [PIPE_NAME]
    with sqlite3.connect(out / "results.sqlite") as db:
        assert db.execute("SELECT DISTINCT pipeline FROM scores").fetchall() == [(PIPE_NAME,)]
        assert db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 2 * N_SAMPLES
    assert json.loads((out / "summary.json").read_text())["suite"] == SUITE_NAME
    table = [row for row in stdout.splitlines() if "↑" in row or "↓" in row]
    assert [row.split(" | ")[0].strip("| ").replace("\\|", "|") for row in table] == [PIPE_NAME] * 2  # '|' escaped as '\|'
    assert {row.count(" | ") for row in table} == {6}
    site = build_site([out], tmp_path / "site")
    pages = [p.read_text() for p in site.parent.glob("*.html")]
    assert pages and not any("<script>alert" in html or "<img src=x" in html for html in pages)
    assert SUITE_NAME in unescape("".join(pages)) and PIPE_NAME in unescape("".join(pages))
    assert not list(tmp_path.rglob("pwned*"))


@pytest.mark.parametrize("name, why", [("a/../../b", "'/'"), ("..", "'.' or '..'"), ("</script>", "'/'"), ("back\\slash", "'\\\\'"),
                                       ("tab\there", "'\\t'")])
def test_names_that_would_leave_the_results_folder_are_refused(cli, tmp_path, objects_root, name, why):
    suite = write_suite(tmp_path, objects_root, name=f"name: {json.dumps(name)}")
    code, _, err = cli("run", suite, "--out", tmp_path / "out", "--no-progress")
    line = one_error_line(err)
    assert code == 2 and f"{suite}:1: name" in line and "cannot name a results folder" in line and why in line
    quoted = json.dumps(name)  # a YAML double-quoted string
    code, _, err = cli("run", write_suite(tmp_path, objects_root), "--set", f"pipeline.identity.name={quoted}", "--no-progress")
    assert code == 2 and f"--set name={quoted}: name" in one_error_line(err)
    assert not (tmp_path / "out").exists()
