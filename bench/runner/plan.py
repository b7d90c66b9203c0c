"""Planning a run: loading the suite and pipelines, which samples each run key still misses (resume), and
the batches they are loaded in (same-shape groups, a background prefetch thread)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from queue import Full, Queue
from typing import TypeVar

import torch
from torch import Tensor

from bench import distributed
from bench.data.base import check_same_size, check_view
from bench.errors import ConfigError
from bench.metrics.base import Metric
from bench.metrics.evaluate import not_predicted
from bench.pipeline import Pipeline, load_pipeline
from bench.registry import load_adapters
from bench.store import Store
from bench.suite import Suite, load_suite
from bench.types import Sample, SampleSpec, View


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
        "draws": lambda: torch.tensor(suite.config.draws, device=device),
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


def scorable_metrics(suite: Suite, pipeline: Pipeline) -> dict[str, Metric]:
    """The suite's metrics that can score what ``pipeline`` predicts: available (weights found) and on a
    field it predicts (no depth metrics for a pipeline without depth: those are reported as not
    applicable, not as a failure of every sample)."""
    return {name: m for name, m in suite.metrics.items() if not m.unavailable() and not_predicted(m, pipeline.outputs) is None}


def run_key(suite: Suite, pipeline: Pipeline, seed: int) -> str:
    """What a stored row was scored under: data and protocol, metric options (:meth:`Suite.scoring_digest`),
    pipeline config and weights, and seed. Rows of another key are never reused."""
    return hashlib.sha256(f"{suite.scoring_digest()}|{pipeline.digest}|{seed}".encode()).hexdigest()[:16]


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
