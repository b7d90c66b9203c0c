"""Summarising a run: statistics per pipeline and metric from the stored rows, the best row and paired tests,
the text table, and ``summary.json`` with everything needed to trace the numbers."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from bench.data.generated import read_marker
from bench.errors import ConfigError
from bench.metrics.base import Metric
from bench.metrics.evaluate import not_predicted
from bench.metrics.stats import PendingCIs, aggregate, paired_p_value, unit_values
from bench.pipeline import Pipeline
from bench.registry import PROJECT_ROOT
from bench.runner.plan import Plan, RunOptions
from bench.store import Store, StoredScores
from bench.suite import Suite
from bench.types import SampleSpec

PACKAGES = ("nvsbench", "torch", "torchvision", "easypytorch3d", "kornia", "numpy", "scipy", "pillow")


def radius_label(r: float, bins: dict[str, list[tuple[float, float]]]) -> str:
    """The first bin with an interval holding ``r``, a sample's first target camera's distance from the origin."""
    return next((name for name, intervals in bins.items() if any(lo <= r <= hi for lo, hi in intervals)), "outside")


def _git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str | None]:
    out = {}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def data_facts(suite: Suite, specs: list[SampleSpec]) -> dict:
    """What tells the run's data from the split a published number was measured on (``meta.data`` of the
    summary, read by :mod:`bench.leaderboard.published`): the ``synth.json`` parameters of a generated stand-in (None
    for other data, :func:`bench.data.generated.read_marker`), the scenes and samples the protocol lists
    before ``--limit``, the (H, W) of the first sample's first target view (None if it cannot be read), and how the
    reader resized that view (:meth:`bench.data.base.Reader.resize_notes`: per-axis scaling, aspect ratio, K)."""
    first = specs[0]
    try:
        size = list(suite.reader.load_view(first.scene, first.target_views[0]).image.shape[-2:])
    except (ConfigError, OSError):  # a corrupt first view fails its sample, not the run
        size = None
    return {"generated": read_marker(suite.reader.root), "scenes": len({s.scene for s in specs}), "samples": len(specs),
            "image_size": size, "resized": suite.reader.resize_notes()}


def summarize(
    suite: Suite, pipelines: list[Pipeline], store: Store, plan: Plan, sample_ids: list[str], opts: RunOptions, wall: float,
    world_size: int = 1, data: dict | None = None,
) -> dict:
    """The ``summary.json`` document, aggregated from the database rows of this run's samples (under the plan's keys);
    ``data`` is :func:`data_facts` of the suite's samples."""
    ids = set(sample_ids)
    per_scene = suite.config.aggregate == "scene"
    keys = plan.keys
    bins = suite.config.radius_bins
    labels = {s: radius_label(r, bins) for s, r in store.radii(plan.data_key).items() if s in ids} if bins else {}
    pending = PendingCIs(opts.seed)
    results: dict[str, dict] = {p.name: {} for p in pipelines}
    for name, metric in suite.metrics.items():
        reason = metric.unavailable()
        scored: dict[str, StoredScores] = {}
        for p in pipelines:
            why = reason or not_predicted(metric, p.outputs)
            if why:
                results[p.name][name] = {"unavailable": why, "higher_is_better": metric.higher_is_better}
                continue
            stored = scored[p.name] = store.scores(keys[p.name], name, ids)
            entry = aggregate(metric, *_columns(stored), opts.seed, per_scene, pending)
            gaps = store.not_applicable(keys[p.name], name, ids)
            if gaps:  # the dataset's gaps, in no statistic and no failure count
                entry["not_applicable"] = {"n": len(gaps), "reason": gaps[0][1], "first": gaps[0][0]}
            if bins:  # bins are applied here, to the stored geometry: changing them re-scores nothing
                in_bin = [labels.get(s, "outside") for s in stored.samples]
                entry["by_radius"] = {
                    label: aggregate(metric, *_columns(stored.subset([b == label for b in in_bin])), opts.seed, per_scene, pending)
                    for label in sorted(set(in_bin))
                }
            results[p.name][name] = entry
        _mark_best(results, name, metric, scored, per_scene)
    pending.compute()
    failures = {  # a stored failure of a metric now unavailable for the pipeline (it predicts no depth) is not one
        p.name: [{"sample": f["sample"], "error": f"{f['what']}: {f['error']}"} for f in store.failures(keys[p.name], ids)
                 if "unavailable" not in results[p.name].get(f["what"], {})]
        for p in pipelines
    }
    return {
        "suite": suite.name,
        "n_samples": len(sample_ids),
        "primary_metric": suite.config.primary_metric,
        "aggregate": suite.config.aggregate,
        "prediction_quantization": suite.config.metric_options.quantize,  # scored as floats ("none") or on the 8-bit grid
        "results": results,
        "failures": failures,
        "meta": {
            "git_commit": _git_commit(),
            "config_hashes": {"suite": suite.doc.digest(), **{p.name: p.digest for p in pipelines}},
            "run_keys": keys,
            "not_summarized": sorted(store.pipelines() - set(keys)),  # pipelines of earlier commands in this results folder
            "data_key": plan.data_key,
            "checkpoints": {p.name: p.checkpoint for p in pipelines if p.checkpoint},
            "suite_config": suite.doc.data,
            "seed": opts.seed,
            "device": opts.device,
            "world_size": world_size,
            "threads": torch.get_num_threads(),  # float rounding of some pipelines depends on it
            "limit": opts.limit,
            "data": data,
            "packages": _versions(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "command": sys.argv,
            "wall_time_s": round(wall, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }


def _columns(stored: StoredScores) -> tuple[list, list, list, list]:
    return stored.samples, stored.scenes, stored.values, stored.stats


def _mark_best(results: dict, name: str, metric: Metric, scored: dict[str, StoredScores], per_scene: bool) -> None:
    """Flag the best pipeline(s) on metric ``name`` and give every other its paired-test p-value against the best.

    Pipelines are compared on the samples all of them scored, so one that fails on the hard samples is not
    ranked on the easy ones alone: on the mean over those samples (of per-scene means with ``aggregate:
    scene``), or for a dataset-level metric on ``reduce`` of their pooled rows. ``compared_on`` says how many
    samples that is. Equal values are all best. The p-value is the Wilcoxon signed-rank test on the same
    samples (or scenes); None for distribution metrics, whose per-sample values (an FID of a few images)
    say nothing about the pooled one.
    """
    scored = {p: s for p, s in scored.items() if results[p][name].get("mean") is not None}
    if not scored:
        return
    common = set.intersection(*({s for s, v, st in zip(x.samples, x.values, x.stats) if v is not None or st is not None}
                                for x in scored.values()))
    kept = {p: x.subset([s in common for s in x.samples]) for p, x in scored.items()}
    units = {p: unit_values(x.samples, x.scenes, x.values, per_scene) for p, x in kept.items()}
    if metric.reduce is None:
        value = {p: float(np.mean(list(u.values()))) if u else None for p, u in units.items()}
    else:
        value = {p: float(metric.reduce(np.concatenate(x.stats))) if x.stats else None for p, x in kept.items()}
    candidates = {p: v for p, v in value.items() if v is not None and math.isfinite(v)}
    top = (max if metric.higher_is_better else min)(candidates.values()) if candidates else None
    best = next((p for p, v in candidates.items() if v == top), None)
    for p in scored:
        entry = results[p][name]
        entry["best"] = best is not None and candidates.get(p) == top
        entry["compared_on"] = len(common)
        paired = sorted(set(units[p]) & set(units[best])) if best is not None else []
        entry["p_vs_best"] = None if entry["best"] or best is None or metric.family == "distribution" else paired_p_value(
            np.array([units[p][u] for u in paired]), np.array([units[best][u] for u in paired])
        )


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _p_cell(entry: dict) -> str:
    if entry.get("best"):
        return "best"
    p = entry.get("p_vs_best")
    return "" if p is None else f"{p:.3g}"


def format_table(summary: dict) -> str:
    """The summary as a text table: pipeline, metric, mean, 95 % CI, n, paired p vs best, failures."""
    from tabulate import tabulate

    rows = []
    for pipe, metrics in summary["results"].items():
        n_fail = len({f["sample"] for f in summary["failures"].get(pipe, [])})  # failed samples, not failure records
        for name, m in metrics.items():
            label = f"{name} {'↑' if m['higher_is_better'] else '↓'}"
            if "unavailable" in m:
                rows.append([pipe, label, "unavailable", m["unavailable"], "", "", n_fail])
            elif m["mean"] is None:
                rows.append([pipe, label, "-", "-", 0, "", n_fail])
            else:
                ci = f"[{m['ci95'][0]:.4f}, {m['ci95'][1]:.4f}]" if m["ci95"] else "-"
                rows.append([pipe, label, f"{m['mean']:.4f}", ci, m["n"], _p_cell(m), n_fail])
    headers = ["pipeline", "metric", "mean", "95% CI", "n", "p vs best", "failures"]
    escaped = [[c.replace("|", "\\|") if isinstance(c, str) else c for c in row] for row in rows]  # a '|' in a name keeps its column
    return "\n".join([tabulate(escaped, headers=headers, tablefmt="github"), *table_notes(summary)])


def all_failed(summary: dict) -> list[str]:
    """The pipelines of which no sample was scored by any metric although samples were tried (each failed)."""
    scored = {pipe for pipe, metrics in summary["results"].items() if any(m.get("n") for m in metrics.values())}
    return [pipe for pipe, failures in summary["failures"].items() if failures and pipe not in scored]


def table_notes(summary: dict) -> list[str]:
    """Lines under the table: what a mean is over where the metric says (``details["mean_over"]``, e.g. mIoU's
    classes), the samples whose ground truth a metric cannot score, and the first failure reason of each pipeline
    with failures."""
    notes = []
    for pipe, metrics in summary["results"].items():
        notes += [f"{pipe} {name}: mean over {m['details']['mean_over']}" for name, m in metrics.items() if m.get("details", {}).get("mean_over")]
        gaps: dict[tuple, list[str]] = {}  # metrics with the same gaps, named together
        for name, m in metrics.items():
            if m.get("not_applicable"):
                gaps.setdefault(tuple(m["not_applicable"].values()), []).append(name)
        notes += [f"{pipe} {', '.join(names)}: not applicable to {n} samples whose target {why} (e.g. {first}; see nvsbench data check)"
                  for (n, why, first), names in gaps.items()]
    for pipe, failures in summary["failures"].items():
        if failures:
            notes.append(f"{pipe}: first failure: {failures[0]['sample']}: {failures[0]['error']}")
    return notes
