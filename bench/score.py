"""``nvsbench score`` and ``nvsbench score-poses``: metrics on files written by any program.

Prediction and ground-truth files are matched by their path relative to the two folders.
Images are PNG (8-bit RGB); depth is a 16-bit PNG in millimetres or a ``.npy`` array in
metres; segmentation labels are single-channel (or palette) PNGs of class indices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bench.data.io import read_depth_mm, read_labels, read_rgb
from bench.errors import ConfigError
from bench.metrics.base import DepthOptions, Metric
from bench.metrics.evaluate import MetricOptions, call_pairs, with_depth_coverage
from bench.registry import registry

FILE_FAMILIES = ("image", "distribution", "depth", "segmentation")
SUFFIXES = {"image": (".png",), "distribution": (".png",), "depth": (".png", ".npy"), "segmentation": (".png",)}


@dataclass
class ScoreTable:
    """Per-item values, the aggregate per metric, and metrics that could not run here."""

    per_item: dict[str, dict[str, float | None]]
    mean: dict[str, float | None]
    unavailable: dict[str, str]
    not_finite: dict[str, list[str]]

    def to_json(self) -> str:
        doc: dict = {"per_image": self.per_item, "mean": self.mean}
        if self.unavailable:
            doc["unavailable"] = self.unavailable
        if self.not_finite:
            doc["not_finite"] = self.not_finite
        return json.dumps(doc, indent=2)

    def to_text(self, item_label: str = "image") -> str:
        from tabulate import tabulate

        names = list(self.mean)
        rows = [[item, *(_fmt(v.get(n)) for n in names)] for item, v in self.per_item.items()]
        rows.append(["mean", *(_fmt(self.mean[n]) for n in names)])
        text = tabulate(rows, headers=[item_label, *names], tablefmt="github")
        text += "".join(f"\n{n}: unavailable: {why}" for n, why in self.unavailable.items())
        return text + "".join(
            f"\n{n}: not finite for {len(items)} {item_label}(s), left out of the mean: {', '.join(items[:5])}"
            for n, items in self.not_finite.items()
        )


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def resolve_metrics(names: list[str], families: tuple[str, ...]) -> dict[str, Metric]:
    """Registered metrics by name, checked to belong to ``families`` and to one file kind."""
    metrics = {n: registry("metrics").get(n, "--metrics") for n in names}
    for n, m in metrics.items():
        if m.family not in families:
            raise ConfigError(f"--metrics: '{n}' is a {m.family} metric; this command scores {' / '.join(families)} metrics")
        if m.needs_mask:
            raise ConfigError(f"--metrics: '{n}' needs foreground masks, which score does not read; use it in a suite")
    kinds = {"image" if m.family == "distribution" else m.family for m in metrics.values()}
    if len(kinds) > 1:
        raise ConfigError(f"--metrics mixes file kinds ({', '.join(sorted(kinds))}); score one kind per call")
    return with_depth_coverage(metrics)


def _read(path: Path, family: str) -> Tensor:
    if family in ("image", "distribution"):
        return read_rgb(path)
    if family == "segmentation":
        return read_labels(path)
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read depth array {path}: {exc}") from None
        if arr.ndim != 2:
            raise ConfigError(f"depth array must be 2-D (H, W), got shape {arr.shape}: {path}")
        return torch.from_numpy(arr.astype(np.float32))
    return read_depth_mm(path)


def matched_files(pred_dir: Path, gt_dir: Path, suffixes: tuple[str, ...]) -> list[str]:
    """Relative paths present in both folders; a file in only one of them is an error naming it."""
    for d in (pred_dir, gt_dir):
        if not d.is_dir():
            raise ConfigError(f"folder not found: {d}")

    def listing(d: Path) -> set[str]:
        return {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and p.suffix.lower() in suffixes}

    pred, gt = listing(pred_dir), listing(gt_dir)
    for name in sorted(gt ^ pred):
        missing_in = pred_dir if name in gt else gt_dir
        present = gt_dir if name in gt else pred_dir
        raise ConfigError(f"{present / name} has no counterpart {missing_in / name}")
    if not gt:
        raise ConfigError(f"no {'/'.join(suffixes)} files in {gt_dir}")
    return sorted(gt)


def _table(metrics: dict[str, Metric], items: list[str], rows: dict[str, list[Tensor]]) -> ScoreTable:
    """Per-item values and aggregates from each metric's per-item outputs ((1,) values or (1, K) stats)."""
    per_item: dict[str, dict[str, float | None]] = {item: {} for item in items}
    mean: dict[str, float | None] = {}
    unavailable = {n: why for n, m in metrics.items() if (why := m.unavailable())}
    not_finite: dict[str, list[str]] = {}
    for name, metric in metrics.items():
        if name in unavailable:
            mean[name] = None
            continue
        outs = [r.detach().double().cpu() for r in rows[name]]
        if metric.reduce is None:
            values = [float(o.mean()) for o in outs]
            finite = [v for v in values if np.isfinite(v)]
            mean[name] = float(np.mean(finite)) if finite else None
        else:
            stats = [o.numpy().reshape(o.shape[0], -1) for o in outs]
            values = [float(metric.reduce(s)) for s in stats]
            mean[name] = float(metric.reduce(np.concatenate(stats)))
        for item, v in zip(items, values):
            per_item[item][name] = v if np.isfinite(v) else None
            if not np.isfinite(v):
                not_finite.setdefault(name, []).append(item)
    return ScoreTable(per_item, mean, unavailable, not_finite)


def score_folders(pred_dir: Path, gt_dir: Path, metric_names: list[str], depth: DepthOptions) -> ScoreTable:
    """Score every file of ``pred_dir`` against its counterpart in ``gt_dir``."""
    metrics = resolve_metrics(metric_names, FILE_FAMILIES)
    family = next(iter(metrics.values())).family
    options = MetricOptions(depth=depth)
    names = matched_files(pred_dir, gt_dir, SUFFIXES[family])
    rows: dict[str, list[Tensor]] = {n: [] for n in metrics}
    for name in names:
        pred, gt = _read(pred_dir / name, family), _read(gt_dir / name, family)
        if pred.shape != gt.shape:
            raise ConfigError(f"{pred_dir / name} is {tuple(pred.shape)} but {gt_dir / name} is {tuple(gt.shape)}")
        for mname, metric in metrics.items():
            if not metric.unavailable():
                rows[mname].append(call_pairs(metric, pred[None], gt[None], None, options))
    return _table(metrics, names, rows)


def read_poses(path: Path) -> dict[str, Tensor]:
    """``{name: (4, 4) cam2world}`` from a JSON file; a malformed entry is an error naming it."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot parse {path} as JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} must map camera names to 4x4 cam2world matrices")
    poses = {}
    for name, value in doc.items():
        try:
            mat = torch.tensor(value, dtype=torch.float64)
        except (TypeError, ValueError):
            mat = None
        if mat is None or mat.shape != (4, 4):
            raise ConfigError(f"{path}: camera '{name}' is not a 4x4 matrix")
        poses[name] = mat
    return poses


def score_pose_files(pred_file: Path, gt_file: Path, metric_names: list[str]) -> ScoreTable:
    """Pose metrics per camera name present in both files (absolute cam2world against ground truth)."""
    metrics = resolve_metrics(metric_names, ("pose",))
    pred, gt = read_poses(pred_file), read_poses(gt_file)
    for name in sorted(set(pred) ^ set(gt)):
        present, missing = (pred_file, gt_file) if name in pred else (gt_file, pred_file)
        raise ConfigError(f"camera '{name}' of {present} is missing from {missing}")
    names = sorted(gt)
    p = torch.stack([pred[n] for n in names])
    g = torch.stack([gt[n] for n in names])
    options = MetricOptions()
    rows = {m: list(call_pairs(metric, p, g, None, options).split(1)) for m, metric in metrics.items()}
    return _table(metrics, names, rows)
