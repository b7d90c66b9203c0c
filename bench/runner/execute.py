"""Executing a run: predict a batch, check and score the predictions, store them in one transaction, and
:func:`run` itself, which plans, executes and summarises (also under torchrun, :mod:`bench.distributed`)."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from bench import distributed
from bench.errors import ConfigError
from bench.metrics.evaluate import cost_scores, score_samples
from bench.pipeline import Pipeline
from bench.runner.plan import Plan, RunOptions, SampleLoader, collate, load_chunks, load_run, plan_work, prefetched, scorable_metrics
from bench.runner.summary import data_facts, summarize, write_json_atomic
from bench.store import Store
from bench.suite import Suite
from bench.types import Prediction, Sample, SampleSpec
from bench.visuals import save_visual, visual_dir, visual_name

RANGE_TOLERANCE = 1e-4


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


def predict_and_score(pipeline: Pipeline, samples: list[Sample], suite: Suite, opts: RunOptions) -> BatchResult:
    """Run one batch; on an exception, rerun sample by sample to pin the failure on its sample."""
    try:
        state = collate(samples, suite, opts.seed, opts.device, pipeline.needs)
        start = time.perf_counter()
        preds = pipeline.predict_batch(samples, state)
        seconds = time.perf_counter() - start
        checked = [check_prediction(p, s) for p, s in zip(preds, samples)]
    except Exception as exc:  # noqa: BLE001 - any pipeline error is recorded, not fatal
        if len(samples) == 1:
            return BatchResult(failures=[(samples[0].id, "predict", f"{type(exc).__name__}: {exc}")])
        result = BatchResult()
        for s in samples:
            result.extend(predict_and_score(pipeline, [s], suite, opts))
        return result
    metrics = scorable_metrics(suite, pipeline)
    scores, failures = score_samples(samples, checked, metrics, suite.config.metric_options)
    cost, cost_failures = cost_scores(samples, checked, metrics, seconds)
    return BatchResult(scores + cost, failures + cost_failures, {s.id: p for s, p in zip(samples, checked)})


def sample_geometry(samples: list[Sample]) -> list[tuple]:
    """(sample, scene, n_sources, n_targets, angle_deg, radius) per sample, for the ``samples`` table (:attr:`Sample.geometry`)."""
    return [(s.id, s.spec.scene, len(s.sources), len(s.targets), *s.geometry) for s in samples]


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
