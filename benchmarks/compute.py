"""Benchmarks of nvsbench's compute: metric throughput, the point rasterizer, pipeline forward passes
(and the volume renderers' rays/s), and synthetic data generation."""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import NVSBENCH, Table, best_rate, mib, run_child, timed


def metric_throughput(quick: bool) -> Table:
    """psnr + ssim + l1 on batches of pairs: nvsbench against torchmetrics, pyiqa and scikit-image."""
    import torch

    torch.set_num_threads(2)
    return Table.pairs(_throughput_at(128, 8 if quick else 64, quick) + _throughput_at(256, 4 if quick else 16, quick))


def _throughput_at(size: int, n: int, quick: bool) -> list[tuple[str, str]]:
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

    repeats = 1 if quick else 3
    rates = {name: best_rate(fn, n, repeats) for name, fn in (
        ("nvsbench (batched)", ours), ("torchmetrics (per image)", torchmetrics), ("torchmetrics (batched)", torchmetrics_batched),
        ("pyiqa (batched)", iqa), ("scikit-image (per image)", skimage))}
    rows = []
    for name, rate in rates.items():
        ratio = "" if name.startswith("nvsbench") else f" (nvsbench is {rates['nvsbench (batched)'] / rate:.1f}x)"
        rows.append((f"psnr+ssim+l1 at {size}x{size}, {name}", f"{rate:.0f} pairs/s{ratio}"))
    return rows


def _camera_state(size: int) -> dict:
    """The batched state (one sample, one source at depth 1.4, one target) the forward benchmarks run on."""
    import torch

    from bench.cameras import look_at

    K = torch.tensor([[[size * 1.025, 0, (size - 1) / 2], [0, size * 1.025, (size - 1) / 2], [0, 0, 1]]])
    return {"source_image": torch.rand(1, 1, 3, size, size, generator=torch.Generator().manual_seed(0)),
            "source_depth": torch.full((1, 1, size, size), 1.4), "source_mask": torch.ones(1, 1, size, size, dtype=torch.bool),
            "source_K": K[:, None], "source_cam2world": look_at(torch.tensor([[1.4, 0.3, 0.5]]))[:, None], "target_K": K[:, None],
            "target_cam2world": look_at(torch.tensor([[1.2, -0.6, 0.6]]))[:, None], "target_size": torch.tensor([size, size]),
            "near": torch.tensor([0.5]), "far": torch.tensor([2.5]), "background": torch.ones(3), "seed": torch.tensor([0])}


def point_rasterizer(quick: bool) -> Table:
    """pytorch3d's CPU point rasterizer in the oracle_reproject stage, per target view."""
    import torch

    from bench.stages.lift.unproject import UnprojectDepth
    from bench.stages.render.points import PointRasterizer

    torch.set_num_threads(1)
    rows, n = [], 2 if quick else 20
    for size in (64, 128):
        state = _camera_state(size)
        state.update(UnprojectDepth()(state))
        stage = PointRasterizer()
        stage(state)
        seconds = timed(lambda: [stage(state) for _ in range(n)]) / n  # noqa: B023 - called at once
        rows.append((f"point_rasterizer, {size * size} points at {size}x{size}", f"{seconds * 1000:.1f} ms"))
    return Table.pairs(rows)


def pipeline_forward(quick: bool) -> Table:
    """Forward time per sample of every stage pipeline in pipelines/, untrained weights; rays/s of its volume renderer stage."""
    import torch

    from bench.pipeline import build_stage_pipeline, load_pipeline_doc
    from bench.registry import yaml_names
    from bench.types import BASE_FIELDS

    torch.set_num_threads(1)
    sizes, repeats = ((32,), 1) if quick else ((64, 128), 3)
    rows = []
    for name, path in yaml_names("pipelines").items():
        doc, cfg = load_pipeline_doc(path)
        if cfg.stages is None:
            continue
        pipeline = build_stage_pipeline(doc, cfg, BASE_FIELDS | {"source_depth", "source_mask"}, load_weights=False).eval()
        for size in sizes:
            per_stage = _stage_seconds(pipeline.stages, _camera_state(size), repeats)
            total = sum(per_stage.values())
            renderers = [s for s in per_stage if s.endswith("VolumeRenderer")]
            rays = ", ".join(f"{s}: {size * size / per_stage[s]:.0f}" for s in renderers) or "-"
            rows.append([name, f"{size}x{size}", f"{total * 1000:.2f} ms", rays])
    return Table(["pipeline", "image", "forward, 1 sample", "volume renderer rays/s (stage alone)"], rows)


def _stage_seconds(stages, state: dict, repeats: int) -> dict[str, float]:
    """Seconds of each stage (by class name, summed if repeated) in the run with the smallest total, after a warm-up."""
    import torch

    runs = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            s, times = dict(state), {}
            for stage in stages:
                key = type(stage).__name__
                times[key] = times.get(key, 0.0) + timed(lambda: s.update(stage(s)))  # noqa: B023 - called at once
            runs.append(times)
    return min(runs[1:], key=lambda t: sum(t.values()))


def synth_rate(quick: bool) -> Table:
    """`nvsbench data synth` end to end: views and MiB written per second, with and without the command's start-up."""
    n, views = (2, 12) if quick else (8, 48)
    runs = [("objects", 64, ["--objects", str(n), "--views", str(views), "--size", "64"]),
            ("objects", 128, ["--objects", str(n // 2), "--views", str(views), "--size", "128"]),
            ("rooms", (64, 112), ["--set", f"scenes={n // 2}", "--set", f"frames={views}"])]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        start_up = run_child([str(NVSBENCH), "data", "synth", "--kind", "objects", "--out", f"{tmp}/one", "--objects", "1", "--views", "1",
                              "--size", "16"]).check("data synth").seconds
        for i, (kind, size, args) in enumerate(runs):
            out = Path(tmp) / f"set{i}"
            child = run_child([str(NVSBENCH), "data", "synth", "--kind", kind, "--out", str(out), *args]).check("data synth")
            views = len([p for p in out.rglob("*.png") if p.parent.name != "depth" and p.parent.name != "mask"])
            size_mib = mib(out)
            net = child.seconds - start_up
            label = f"{size}x{size}" if isinstance(size, int) else f"{size[0]}x{size[1]}"
            rows.append([kind, label, str(views), f"{size_mib:.2f}", f"{child.seconds:.1f} s", f"{views / child.seconds:.0f}",
                         f"{views / net:.0f}", f"{size_mib / net:.2f}"])
    notes = [f"Start-up taken as the wall of a one-view run: {start_up:.2f} s. Objects sets also write a 16-bit depth and a mask PNG "
             "per view (counted in MiB, not in views). OMP_NUM_THREADS=1."]
    return Table(["generator", "image", "views", "MiB written", "wall", "views/s", "views/s excl. start-up", "MiB/s excl. start-up"],
                 rows, notes)
