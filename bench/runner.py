"""The runner: samples -> pipelines -> metrics -> results database -> summary.

For each pipeline it scores only the samples the database does not already cover under
the same run key (so a rerun resumes), one batch per transaction. A pipeline that raises
on a batch is retried sample by sample so the failing sample is recorded under
``failures`` and the rest still count; a non-finite metric value is a failure too, never
averaged in. Under torchrun the batches are shared out among the ranks
(:mod:`bench.distributed`, :class:`Plan`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from queue import Full, Queue
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from bench import distributed
from bench.data.base import check_same_size, check_view
from bench.data.generated import read_marker
from bench.errors import ConfigError
from bench.metrics.base import Metric
from bench.metrics.evaluate import not_predicted, score_samples
from bench.metrics.stats import PendingCIs, aggregate, paired_p_value, unit_values
from bench.pipeline import Pipeline, load_pipeline
from bench.registry import PROJECT_ROOT, load_adapters
from bench.store import Store, StoredScores
from bench.suite import Suite, load_suite
from bench.types import Prediction, Sample, SampleSpec, View
from bench.visuals import save_visual, visual_dir, visual_name

PACKAGES = ("nvsbench", "torch", "torchvision", "easypytorch3d", "kornia", "numpy", "scipy", "pillow")
RANGE_TOLERANCE = 1e-4


@dataclass
class RunOptions:
    """What ``nvsbench run`` was asked, beyond the suite file."""

    pipelines: list[str] | None = None
    data_root: Path | None = None
    out: Path | None = None
    limit: int | None = None
    device: str = "cpu"
    seed: int = 0
    overrides: list[str] = field(default_factory=list)
    adapter_dirs: list[Path] = field(default_factory=list)
    progress: bool = True
    visuals: int = 8  # the first N samples also get an image grid in OUT/visuals/<pipeline>/<run key>/
    prefetch: int = 2  # batches loaded ahead by a background thread (0: load in the main thread)


T = TypeVar("T")


def split_overrides(overrides: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Separate ``pipeline.<name>.key=value`` (for pipeline YAMLs) from suite overrides."""
    suite, per_pipeline = [], {}
    for text in overrides:
        if text.startswith("pipeline."):
            name, _, rest = text[len("pipeline.") :].partition(".")
            if not rest:
                raise ConfigError(f"--set {text}: expected pipeline.<name>.<key>=<value>")
            per_pipeline.setdefault(name, []).append(rest)
        else:
            suite.append(text)
    return suite, per_pipeline


def load_run(suite_path: Path, opts: RunOptions) -> tuple[Suite, list[Pipeline]]:
    """Load and validate everything a run needs before any data is read."""
    load_adapters(opts.adapter_dirs)
    suite_overrides, pipeline_overrides = split_overrides(opts.overrides)
    suite = load_suite(suite_path, suite_overrides, opts.data_root)
    names = opts.pipelines or suite.config.pipelines
    short = {n: Path(n).stem if n.endswith((".yaml", ".yml")) else n for n in names}  # --set pipeline.<stem> for a path
    unknown = set(pipeline_overrides) - set(short.values())
    if unknown:
        raise ConfigError(f"--set pipeline.{sorted(unknown)[0]}...: no such pipeline in this run ({', '.join(short.values())})")
    where = "--pipeline" if opts.pipelines else suite.doc.where(("pipelines",))  # who named the pipelines
    pipelines = [load_pipeline(n, suite.available_fields, pipeline_overrides.get(short[n], []), where) for n in names]
    seen = [p.name for p in pipelines]
    if len(set(seen)) != len(seen):
        raise ConfigError(f"two pipelines share a name: {seen}")
    return suite, pipelines


# --------------------------------------------------------------------------- samples


def sample_seed(seed: int, sample_id: str) -> int:
    """A per-sample seed that does not depend on batching, order or sharding."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()[:7], "little")


class SampleLoader:
    """Loads samples from a reader, keeping recently used views (sources repeat across samples).

    Every view is checked once when read (:func:`bench.data.base.check_view`: a rigid camera,
    sane intrinsics, depth / mask / labels of the image's size), and a sample's sources, and its
    targets, must share one size (the pipeline receives them stacked). A problem is a
    ConfigError naming the file, or the scene and view.
    """

    def __init__(self, reader):
        self.reader = reader
        self.view = lru_cache(maxsize=64)(self._checked_view)

    def _checked_view(self, scene: str, view_id: str) -> View:
        view = self.reader.load_view(scene, view_id)
        check_view(view, f"{self.reader.root}: scene '{scene}' view '{view_id}'")
        return view

    def load(self, spec: SampleSpec) -> Sample:
        sources = [self.view(spec.scene, v) for v in spec.source_views]
        targets = [self.view(spec.scene, v) for v in spec.target_views]
        for what, views in (("source", sources), ("target", targets)):
            if len(views) > 1:
                check_same_size({v.id: v.size for v in views}, what, f"sample {spec.id}")
        return Sample(spec, sources, targets)


def collate(samples: list[Sample], suite: Suite, seed: int, device: str, fields: frozenset[str] | None = None) -> dict[str, Tensor]:
    """The batched pipeline state (see :mod:`bench.types`); target images are left out.

    The samples must share their numbers of sources and of targets (as :func:`batches` groups them).
    With ``fields``, only those are built (a pipeline's stages declare what they read: ``needs``).
    """
    r = suite.reader
    b = len(samples)
    wanted = (lambda name: True) if fields is None else fields.__contains__

    def stack(views: str, attr: str) -> Tensor:  # (B, S or T, ...): one stack of every sample's views, then split by sample
        n = len(getattr(samples[0], views))
        if any(len(getattr(s, views)) != n for s in samples):
            raise ValueError(f"samples of one batch have different numbers of {views}")
        return torch.stack([getattr(v, attr) for s in samples for v in getattr(s, views)]).unflatten(0, (b, n)).to(device)

    build = {
        "source_image": lambda: stack("sources", "image"),
        "source_K": lambda: stack("sources", "K"),
        "source_cam2world": lambda: stack("sources", "cam2world"),
        "target_K": lambda: stack("targets", "K"),
        "target_cam2world": lambda: stack("targets", "cam2world"),
        "target_size": lambda: torch.tensor(samples[0].targets[0].size, device=device),
        "near": lambda: torch.full((b,), float(r.near), device=device),
        "far": lambda: torch.full((b,), float(r.far), device=device),
        "background": lambda: torch.tensor(r.background, dtype=torch.float32, device=device),
        "seed": lambda: torch.tensor([sample_seed(seed, s.id) for s in samples], device=device),
        **({"source_depth": lambda: stack("sources", "depth")} if "source_depth" in r.provides else {}),
        **({"source_mask": lambda: stack("sources", "mask")} if "source_mask" in r.provides else {}),
    }
    return {name: make() for name, make in build.items() if wanted(name)}


def _shape_key(s: Sample) -> tuple:
    return (len(s.sources), len(s.targets), s.sources[0].size, s.targets[0].size)


def batches(
    specs: list[SampleSpec], loader: SampleLoader, size: int, failures: list[tuple[str, str, str]] | None = None
) -> Iterator[list[Sample]]:
    """Consecutive samples in batches of at most ``size`` that share sizes (so they stack).

    With a ``failures`` list, a sample whose files cannot be read or fail the loader's checks is
    left out and appended to it as ``(sample id, "load", error)``, for the caller to record; without
    one, its ConfigError propagates.
    """
    batch: list[Sample] = []
    batch_key = None  # _shape_key of the batch's samples
    for spec in specs:
        try:
            sample = loader.load(spec)
        except (ConfigError, OSError) as exc:  # OSError: a reader's unwrapped I/O error (permissions, a vanished file)
            if failures is None:
                raise
            failures.append((spec.id, "load", str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"))
            continue
        key = _shape_key(sample)
        if batch and (len(batch) == size or key != batch_key):
            yield batch
            batch = []
        batch.append(sample)
        batch_key = key
    if batch:
        yield batch


# --------------------------------------------------------------------------- scoring


def check_prediction(pred: Prediction, sample: Sample) -> Prediction:
    """``pred`` with its image clamped to [0, 1] and half-precision fields in float32, after checking it against
    the contract; ValueError otherwise.

    Checked: a :class:`Prediction` whose ``image`` is a floating-point tensor (T, D, 3, H, W) with the
    sample's number of targets T, the targets' (H, W) and D >= 1, all finite and within [0, 1] up to
    ``RANGE_TOLERANCE``; ``depth`` and ``seg`` (T, D, H, W), ``seg`` integer, and ``poses`` (T, D, 4, 4)
    when given. Values outside [0, 1] by more than the tolerance are a failure of the sample, never
    clamped: they come from a bug or another convention ([-1, 1], [0, 255]), and clamping would hide
    it while changing the scores. Within the tolerance (float rounding, e.g. alpha compositing that
    sums to 1 + 1e-7) they are clamped.
    """
    if not isinstance(pred, Prediction):
        raise ValueError(f"the pipeline returned a {type(pred).__name__}, not a Prediction")
    img = pred.image
    if not isinstance(img, Tensor) or not img.is_floating_point():
        got = f"a tensor of {img.dtype}" if isinstance(img, Tensor) else f"a {type(img).__name__}"
        raise ValueError(f"prediction image must be a floating-point tensor in [0, 1], got {got}")
    t, (h, w) = len(sample.targets), sample.targets[0].size
    if img.dim() != 5 or img.shape[0] != t or img.shape[1] < 1 or img.shape[2:] != (3, h, w):
        raise ValueError(f"prediction image has shape {tuple(img.shape)}, expected ({t}, D, 3, {h}, {w}) with D >= 1")
    d = img.shape[1]
    for name, tail in (("depth", (h, w)), ("seg", (h, w)), ("poses", (4, 4))):
        extra = getattr(pred, name)
        if extra is None:
            continue
        if not isinstance(extra, Tensor) or tuple(extra.shape) != (t, d, *tail):
            shape = tuple(extra.shape) if isinstance(extra, Tensor) else type(extra).__name__
            raise ValueError(f"prediction {name} has shape {shape}, expected {(t, d, *tail)} (T, D of the image)")
        if name == "seg" and extra.is_floating_point():
            raise ValueError(f"prediction seg must hold integer class labels, got {extra.dtype}")
    half = {name: v.float() for name in ("image", "depth", "poses") if (v := getattr(pred, name)) is not None and v.dtype.itemsize < 4}
    if half:  # scored in float32: SSIM's E[x^2] - mu^2 in bfloat16 is off by ~1e-3, the size of its C2 (0.920 instead of 0.907)
        pred = dataclasses.replace(pred, **half)
        img = pred.image
    lo, hi = (float(v) for v in torch.aminmax(img))  # one pass; NaN if any value is NaN, +-inf if any is infinite
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"prediction image contains {int((~torch.isfinite(img)).sum())} NaN or infinite values")
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise ValueError(f"prediction image values span [{lo:.4g}, {hi:.4g}], outside [0, 1] by more than {RANGE_TOLERANCE:g}")
    return pred if 0 <= lo and hi <= 1 else dataclasses.replace(pred, image=img.clamp(0, 1))


@dataclass
class BatchResult:
    """Scores, failures (sample, what, error) and the checked predictions by sample id."""

    scores: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    predictions: dict[str, Prediction] = field(default_factory=dict)

    def extend(self, other: BatchResult) -> None:
        self.scores += other.scores
        self.failures += other.failures
        self.predictions.update(other.predictions)


def scorable_metrics(suite: Suite, pipeline: Pipeline) -> dict[str, Metric]:
    """The suite's metrics that can score what ``pipeline`` predicts: available (weights found) and on a
    field it predicts (no depth metrics for a pipeline without depth: those are reported as not
    applicable, not as a failure of every sample)."""
    return {name: m for name, m in suite.metrics.items() if not m.unavailable() and not_predicted(m, pipeline.outputs) is None}


def predict_and_score(pipeline: Pipeline, samples: list[Sample], suite: Suite, opts: RunOptions) -> BatchResult:
    """Run one batch; on an exception, rerun sample by sample to pin the failure on its sample."""
    try:
        preds = pipeline.predict_batch(samples, collate(samples, suite, opts.seed, opts.device, pipeline.needs))
        checked = [check_prediction(p, s) for p, s in zip(preds, samples)]
    except Exception as exc:  # noqa: BLE001 - any pipeline error is recorded, not fatal
        if len(samples) == 1:
            return BatchResult(failures=[(samples[0].id, "predict", f"{type(exc).__name__}: {exc}")])
        result = BatchResult()
        for s in samples:
            result.extend(predict_and_score(pipeline, [s], suite, opts))
        return result
    scores, failures = score_samples(samples, checked, scorable_metrics(suite, pipeline), suite.config.metric_options)
    return BatchResult(scores, failures, {s.id: p for s, p in zip(samples, checked)})


def sample_geometry(samples: list[Sample]) -> list[tuple]:
    """(sample, scene, n_sources, n_targets, angle_deg, radius) per sample, for the ``samples`` table (:attr:`Sample.geometry`)."""
    return [(s.id, s.spec.scene, len(s.sources), len(s.targets), *s.geometry) for s in samples]


def radius_label(r: float, bins: dict[str, list[tuple[float, float]]]) -> str:
    """The first bin with an interval holding ``r``, a sample's first target camera's distance from the origin."""
    return next((name for name, intervals in bins.items() if any(lo <= r <= hi for lo, hi in intervals)), "outside")


# --------------------------------------------------------------------------- summary


def run_key(suite: Suite, pipeline: Pipeline, seed: int) -> str:
    """What a stored row was scored under: data and protocol, metric options (:meth:`Suite.scoring_digest`),
    pipeline config and weights, and seed. Rows of another key are never reused."""
    return hashlib.sha256(f"{suite.scoring_digest()}|{pipeline.digest}|{seed}".encode()).hexdigest()[:16]


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
    summary, read by :mod:`bench.leaderboard`): the ``synth.json`` parameters of a generated stand-in (None
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
    failures = {
        p.name: [{"sample": f["sample"], "error": f"{f['what']}: {f['error']}"} for f in store.failures(keys[p.name], ids)]
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


def run(suite_path: Path, opts: RunOptions) -> tuple[dict | None, Path]:
    """Evaluate every pipeline on the suite; returns the summary (None on ranks other than 0) and the results folder.

    Under torchrun each rank scores its part of the samples (:mod:`bench.distributed`).
    """
    start = time.perf_counter()
    suite, pipelines = load_run(suite_path, opts)
    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {opts.device}: torch sees no CUDA device on this machine (use --device cpu)")
    ctx = distributed.setup(opts.device)
    try:
        return _evaluate(suite, pipelines, dataclasses.replace(opts, device=ctx.device(opts.device)), ctx, start)
    finally:
        distributed.teardown(ctx)


def _evaluate(suite: Suite, pipelines: list[Pipeline], opts: RunOptions, ctx: distributed.Context, start: float) -> tuple[dict | None, Path]:
    torch.manual_seed(opts.seed)
    if ctx.main:  # a generated stand-in is written once, before any rank reads it
        suite.prepare()
    distributed.barrier(ctx)
    specs = list(suite.protocol.samples(suite.reader))
    data = data_facts(suite, specs) if ctx.main and specs else None
    if opts.limit is not None:
        specs = specs[: opts.limit]
    if not specs:
        raise ConfigError(f"suite {suite.name} has no samples (dataset root {suite.reader.root})")
    out = opts.out or Path("results") / suite.name
    store = Store(out) if ctx.main else None
    try:
        plan = distributed.broadcast(ctx, plan_work(store, out, suite, pipelines, specs, opts.seed) if store else None)
        with distributed.rank_store(ctx, out, plan.job, store) as writer:
            score_pipelines(suite, pipelines, specs, plan, writer, out, opts, ctx)
        distributed.barrier(ctx)
        if store is None:
            return None, out
        distributed.merge_shards(store, out, plan.job)
        summary = summarize(suite, pipelines, store, plan, [s.id for s in specs], opts, time.perf_counter() - start, ctx.world_size,
                            data)
    finally:
        if store is not None:
            store.close()
    write_json_atomic(out / "summary.json", summary)
    return summary, out


@dataclass(frozen=True)
class Plan:
    """What is left to score, and the job id naming the ranks' shards.

    ``todo[pipeline]`` lists batches of sample ids in suite order: the batch grid is fixed by the
    position in the suite (samples ``k*B .. k*B+B-1``), and ranks take whole batches, so a sample
    meets the same batch companions whatever the number of processes, and after a crash (a batch
    is stored in one transaction, so it is all there or all missing). Pipelines whose arithmetic
    depends on the batch (a trained network's matrix products round differently for other batch
    sizes, by ~1e-7) then give bit-identical numbers.
    """

    job: str
    todo: dict[str, list[list[str]]]
    keys: dict[str, str]  # run key of each pipeline, from rank 0 (on every node, rows go under the same keys)
    data_key: str


def plan_work(store: Store, out: Path, suite: Suite, pipelines: list[Pipeline], specs: list[SampleSpec], seed: int) -> Plan:
    """Rank 0: merge the shards of interrupted distributed runs, then list per pipeline the batches of
    samples missing a metric under its run key (resume)."""
    distributed.merge_shards(store, out)
    size = suite.config.batch_size
    grid = [specs[i : i + size] for i in range(0, len(specs), size)]
    todo, keys = {}, {}
    for pipeline in pipelines:
        key = keys[pipeline.name] = run_key(suite, pipeline, seed)
        store.register_run(key, pipeline.name, {"pipeline_digest": pipeline.digest, "seed": seed})
        covered = store.covered(key)
        needed = set(scorable_metrics(suite, pipeline))
        missing = [[s.id for s in chunk if not ("predict" in covered.get(s.id, ()) or needed <= covered.get(s.id, set()))] for chunk in grid]
        todo[pipeline.name] = [ids for ids in missing if ids]
    return Plan(distributed.new_job_id(), todo, keys, suite.data_digest())


def score_pipelines(
    suite: Suite, pipelines: list[Pipeline], specs: list[SampleSpec], plan: Plan, writer: Store, out: Path, opts: RunOptions,
    ctx: distributed.Context,
) -> None:
    """Score this rank's batches of each pipeline's samples, writing each batch to ``writer`` in one transaction."""
    by_id = {s.id: s for s in specs}
    loader = SampleLoader(suite.reader)
    visual_ids = {s.id for s in specs[: opts.visuals]}
    for pipeline in pipelines:
        todo = plan.todo[pipeline.name]
        mine = [[by_id[i] for i in ids] for ids in distributed.shard(todo, ctx.rank, ctx.world_size)]
        n_mine = sum(map(len, mine))
        if ctx.backend:
            n_todo = sum(map(len, todo))
            line = f"rank {ctx.rank}/{ctx.world_size}: {pipeline.name}: {n_mine} of {n_todo} samples to score\n"
            sys.stderr.write(line)  # in one write: the ranks share stderr
        if not mine:
            continue
        key, data_key = plan.keys[pipeline.name], plan.data_key
        pipeline.load(opts.device)
        with tqdm(total=n_mine, desc=pipeline.name, unit="sample", disable=not (opts.progress and ctx.main), file=sys.stderr) as bar:
            for batch, unreadable in prefetched(load_chunks(mine, loader, suite.config.batch_size), opts.prefetch):
                if unreadable:  # samples whose files fail to load: recorded, retried by a rerun
                    writer.write(key, pipeline.name, [], unreadable)
                    bar.update(len(unreadable))
                    continue
                result = predict_and_score(pipeline, batch, suite, opts)
                for sample in batch:
                    if sample.id in visual_ids and sample.id in result.predictions:
                        save_visual(visual_dir(out, pipeline.name, key) / visual_name(sample.id), sample, result.predictions[sample.id])
                geometry = (data_key, sample_geometry(batch))
                writer.write(key, pipeline.name, result.scores, result.failures, geometry)
                bar.update(len(batch))


def load_chunks(
    chunks: list[list[SampleSpec]], loader: SampleLoader, size: int
) -> Iterator[tuple[list[Sample], list[tuple[str, str, str]]]]:
    """The loaded batches of each chunk (split further only where sizes change), as ``(batch, [])``, then
    the chunk's unreadable samples, if any, as ``([], [(sample id, "load", error), ...])``."""
    for chunk in chunks:
        unreadable: list[tuple[str, str, str]] = []
        for batch in batches(chunk, loader, size, unreadable):
            yield batch, []
        if unreadable:
            yield [], unreadable


def prefetched(items: Iterator[T], depth: int) -> Iterator[T]:
    """``items``, produced up to ``depth`` ahead by a background thread (0: in the caller's thread).

    Loading a batch is mostly PNG decoding, which releases the GIL, so it overlaps with the
    pipeline and the metrics of the previous batch on a second core, as a ``torch.utils.data``
    DataLoader's workers would, without their processes. Order is kept; an exception of the
    producer is raised here; closing the generator early stops the thread.
    """
    if depth <= 0:
        yield from items
        return
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def offer(entry: tuple) -> bool:
        """Put ``entry`` once there is room; False if the consumer stopped first (it reads no more)."""
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                pass
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            offer((done, exc))

    thread = threading.Thread(target=produce, name="nvsbench-loader", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = queue.get()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        thread.join()


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
