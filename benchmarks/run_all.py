#!/usr/bin/env python3
"""Measurements that are not tests. Run: ``.venv/bin/python benchmarks/run_all.py``.

Writes the figures, with the machine they were measured on, to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NVSBENCH = Path(sys.executable).parent / "nvsbench"


def wall(cmd: list[str], repeats: int = 7) -> float:
    """Median wall time of a command, in seconds (after one warm-up run)."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def cli_start_time() -> list[tuple[str, str]]:
    """`nvsbench --help` and `nvsbench list ...` must not import torch; target < 0.5 s."""
    return [(f"`nvsbench {' '.join(args)}` wall, median of 7", f"{wall([str(NVSBENCH), *args]):.3f} s")
            for args in (["--help"], ["list", "metrics"], ["list", "pipelines"])]


def point_rasterizer() -> list[tuple[str, str]]:
    """pytorch3d's CPU point rasterizer in the oracle_reproject stage, per target view."""
    import torch

    from bench.cameras import look_at
    from bench.stages.lift import UnprojectDepth
    from bench.stages.render import PointRasterizer

    rows = []
    for size in (64, 128):
        K = torch.tensor([[[size * 1.025, 0, (size - 1) / 2], [0, size * 1.025, (size - 1) / 2], [0, 0, 1]]])
        c2w = look_at(torch.tensor([[1.4, 0.3, 0.5]]))
        state = {"source_image": torch.rand(1, 1, 3, size, size), "source_depth": torch.full((1, 1, size, size), 1.4),
                 "source_K": K[:, None], "source_cam2world": c2w[:, None]}
        state.update(UnprojectDepth()(state))
        state.update({"target_K": K[:, None], "target_cam2world": look_at(torch.tensor([[1.2, -0.6, 0.6]]))[:, None],
                      "target_size": torch.tensor([size, size]), "background": torch.ones(3)})
        stage = PointRasterizer()
        stage(state)
        start = time.perf_counter()
        n = 20
        for _ in range(n):
            stage(state)
        rows.append((f"point_rasterizer, {size * size} points at {size}x{size}", f"{(time.perf_counter() - start) / n * 1000:.1f} ms"))
    return rows


def _rate(fn, n_pairs: int, repeats: int = 3) -> float:
    """Pairs per second of ``fn()`` (best of ``repeats`` after a warm-up)."""
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return n_pairs / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def metric_throughput() -> list[tuple[str, str]]:
    """psnr + ssim + l1 on batches of pairs: nvsbench against torchmetrics, pyiqa and scikit-image."""
    return _throughput_at(128, 64) + _throughput_at(256, 16)


def _throughput_at(size: int, n: int) -> list[tuple[str, str]]:
    import numpy as np
    import pyiqa
    import torch
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    from bench.metrics.image import l1, psnr, ssim

    g = torch.Generator().manual_seed(0)
    target = torch.rand(n, 3, size, size, generator=g)
    pred = (target + 0.1 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    pred_np, target_np = pred.permute(0, 2, 3, 1).numpy(), target.permute(0, 2, 3, 1).numpy()
    piqa_psnr = pyiqa.create_metric("psnr", device="cpu", test_y_channel=False)
    piqa_ssim = pyiqa.create_metric("ssim", device="cpu", test_y_channel=False)

    def ours():
        psnr(pred, target), ssim(pred, target), l1(pred, target)

    def torchmetrics():
        for i in range(n):  # per-image values, as the harness stores them
            p, t = pred[i : i + 1], target[i : i + 1]
            tm_psnr(p, t, data_range=1.0), tm_ssim(p, t, data_range=1.0), (p - t).abs().mean()

    def torchmetrics_batched():
        tm_psnr(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
        tm_ssim(pred, target, data_range=1.0, reduction="none"), (pred - target).abs().flatten(1).mean(1)

    def iqa():
        piqa_psnr(pred, target), piqa_ssim(pred, target), (pred - target).abs().flatten(1).mean(1)

    def skimage():
        for p, t in zip(pred_np, target_np):
            peak_signal_noise_ratio(t, p, data_range=1.0)
            structural_similarity(t, p, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=2)
            np.abs(p - t).mean()

    rates = {name: _rate(fn, n) for name, fn in (("nvsbench (batched)", ours), ("torchmetrics (per image)", torchmetrics),
                                                ("torchmetrics (batched)", torchmetrics_batched),
                                                ("pyiqa (batched)", iqa), ("scikit-image (per image)", skimage))}
    rows = []
    for name, rate in rates.items():
        ratio = "" if name.startswith("nvsbench") else f" (nvsbench is {rates['nvsbench (batched)'] / rate:.1f}x)"
        rows.append((f"psnr+ssim+l1 at {size}x{size}, {name}", f"{rate:.0f} pairs/s{ratio}"))
    return rows


def pipeline_forward() -> list[tuple[str, str]]:
    """Forward time per sample (one source, one target) of every shipped stage pipeline, and renderer rays/s."""
    import torch

    from bench.cameras import look_at
    from bench.pipeline import build_stage_pipeline, load_pipeline_doc
    from bench.registry import yaml_names
    from bench.types import BASE_FIELDS

    rows = []
    for name, path in yaml_names("pipelines").items():
        doc, cfg = load_pipeline_doc(path)
        if cfg.stages is None:
            continue
        pipeline = build_stage_pipeline(doc, cfg, BASE_FIELDS | {"source_depth", "source_mask"}, load_weights=False).eval()
        for size in (64, 128):
            K = torch.tensor([[[size * 1.025, 0, (size - 1) / 2], [0, size * 1.025, (size - 1) / 2], [0, 0, 1]]])
            state = {"source_image": torch.rand(1, 1, 3, size, size), "source_depth": torch.full((1, 1, size, size), 1.4),
                     "source_mask": torch.ones(1, 1, size, size, dtype=torch.bool), "source_K": K[:, None],
                     "source_cam2world": look_at(torch.tensor([[1.4, 0.3, 0.5]]))[:, None], "target_K": K[:, None],
                     "target_cam2world": look_at(torch.tensor([[1.2, -0.6, 0.6]]))[:, None], "target_size": torch.tensor([size, size]),
                     "near": torch.tensor([0.5]), "far": torch.tensor([2.5]), "background": torch.ones(3), "seed": torch.tensor([0])}
            with torch.no_grad():
                pipeline.forward_train(state)
                seconds = min(_timed(lambda: pipeline.forward_train(state)) for _ in range(3))  # noqa: B023 - called at once
            rays = f", {size * size / seconds:.0f} rays/s" if any(type(m).__name__.endswith("VolumeRenderer") for m in pipeline.modules()) else ""
            rows.append((f"{name} forward at {size}x{size}, 1 sample", f"{seconds * 1000:.0f} ms{rays}"))
    return rows


def synth_rate() -> list[tuple[str, str]]:
    from bench.data.synth import generate_objects

    rows = []
    for size in (64, 128):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            generate_objects(Path(tmp) / "objs", objects=8, views=24, size=size)
            rows.append((f"synthetic objects at {size}x{size} (8 x 24 views)", f"{8 * 24 / (time.perf_counter() - start):.0f} views/s"))
    return rows


def quickstart() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "out"
        start = time.perf_counter()
        subprocess.run([str(NVSBENCH), "run", "suites/quickstart.yaml", "--data-root", str(data), "--out", str(out), "--no-progress"],
                       cwd=ROOT, check=True, capture_output=True)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([str(NVSBENCH), "run", "suites/quickstart.yaml", "--data-root", str(data), "--out", str(out / "again"), "--no-progress"],
                       cwd=ROOT, check=True, capture_output=True)
        warm = time.perf_counter() - start
    return [("quickstart run incl. data generation", f"{cold:.1f} s"), ("quickstart run, data reused, fresh results", f"{warm:.1f} s")]


def main() -> None:
    sections = {"CLI start time": cli_start_time, "Point rasterizer (oracle_reproject)": point_rasterizer,
                "Metric throughput (CPU, 2 threads)": metric_throughput,
                "Pipeline forward time (CPU, untrained weights)": pipeline_forward,
                "Synthetic data generation": synth_rate, "Quickstart": quickstart}
    lines = ["# Benchmark results", "", f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
             f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}.",
             "Regenerate with `.venv/bin/python benchmarks/run_all.py`.", ""]
    for title, fn in sections.items():
        lines += [f"## {title}", "", "| measurement | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in fn()]
        lines.append("")
    (ROOT / "benchmarks" / "RESULTS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
