"""CLI commands not covered elsewhere: data synth, list, device checks."""

from __future__ import annotations

import json

import pytest
import torch

from bench.data.srn import SRNReader


def test_data_synth_writes_a_set_the_srn_reader_reads(cli, tmp_path):
    out = tmp_path / "objs"
    code, stdout, err = cli("data", "synth", "--kind", "objects", "--out", out, "--objects", "2", "--views", "3",
                            "--size", "24", "--radius", "1.4,1.4", "--seed", "5")
    assert code == 0, err
    assert json.loads((out / "synth.json").read_text())["seed"] == 5
    reader = SRNReader(out, depth=True, mask=True)
    assert reader.scenes() == ["car_0000", "chair_0001"]
    view = reader.load_view("chair_0001", reader.view_ids("chair_0001")[2])
    assert view.image.shape == (3, 24, 24) and view.depth.shape == (24, 24)
    centre_distance = torch.linalg.norm(view.cam2world[:3, 3])
    assert abs(float(centre_distance) - 1.4) < 1e-4


def test_data_synth_bad_arguments(cli, tmp_path):
    code, _, err = cli("data", "synth", "--out", tmp_path / "o", "--radius", "1.4")
    assert code == 2 and "--radius expects A,B" in err
    code, _, err = cli("data", "synth", "--out", tmp_path / "o", "--kind", "object")
    assert code == 2 and "--kind: unknown generator 'object'" in err and "did you mean 'objects'" in err
    code, _, err = cli("data", "synth", "--out", tmp_path / "o", "--set", "objcts=3")
    assert code == 2 and "--set objcts=3: unknown key 'objcts'" in err and "did you mean 'objects'" in err


def test_list_kinds(cli):
    code, stdout, _ = cli("list", "stages")
    assert code == 0 and "point_rasterizer" in stdout and "bench.stages.render.points:PointRasterizer" in stdout
    code, stdout, _ = cli("list", "pipelines")
    assert "identity" in stdout and "oracle_reproject" in stdout
    code, stdout, _ = cli("list", "adapters")
    assert "precomputed" in stdout
    code, _, err = cli("list", "metric")
    assert code == 2  # typer's own usage error


def test_cuda_without_a_gpu_is_a_clear_error(cli, tiny_suite, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    code, _, err = cli("run", tiny_suite, "--device", "cuda", "--out", tmp_path / "o", "--no-progress")
    assert code == 2 and "no CUDA device" in err


def test_the_program_freezes_the_collector_before_exit_but_main_does_not(cli):
    """``nvsbench`` (:func:`bench.cli.entry`) leaves the interpreter's exit fewer objects to collect; :func:`main`,
    which tests call in-process, keeps this process's collector as it is."""
    import gc
    import subprocess
    import sys

    probe = ("import atexit, gc, sys; atexit.register(lambda: print('frozen', gc.get_freeze_count()));"
             "sys.argv = ['nvsbench', 'list', 'metrics']; from bench.cli import entry; entry()")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert int(out.split("frozen ")[-1]) > 10_000  # every object alive at exit
    before = gc.get_freeze_count()
    assert cli("list", "metrics")[0] == 0
    assert gc.get_freeze_count() == before
