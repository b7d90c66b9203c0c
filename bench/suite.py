"""Suites: a dataset read in its on-disk format, a protocol, metrics and the pipelines to compare.

A suite YAML (``suites/<name>.yaml``)::

    name: quickstart
    description: ...
    dataset: {reader: srn, root: ../data/quickstart, depth: true, ...}   # reader's typed params
      generate: {kind: objects, objects: 6}   # optional: make a synthetic stand-in at root first
    protocol: {kind: source_targets, sources: [0]}                     # protocol's typed params
    metrics: [psnr, ssim, l1]
    pipelines: [identity, oracle_reproject]
    primary_metric: psnr
    batch_size: 8
    metric_options: {quantize: none, depth: {median_scaling: false, min_depth: 0.001, max_depth: null}}  # quantize: uint8_floor | uint8_round
    aggregate: sample                  # or scene: average within each scene first, CI over scenes
    radius_bins:                       # optional: results also per bin of target-camera distance
      in_range: [[3, 5]]               # a distance goes to the first bin with an interval holding it
      out_of_range: [[1, 3], [5, 7]]

Relative paths resolve against the YAML file that wrote them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.config import Doc, Origin, apply_overrides, build, load_yaml
from bench.errors import ConfigError, unknown_name
from bench.metrics.base import Metric
from bench.metrics.evaluate import MetricOptions, required_reader_fields, with_depth_coverage, with_mean_draw
from bench.registry import registry
from bench.types import BASE_FIELDS


@dataclass
class SuiteConfig:
    """Top-level keys of a suite YAML."""

    dataset: dict
    protocol: dict
    metrics: list[str]
    pipelines: list[str]
    name: str = ""
    description: str = ""
    primary_metric: str | None = None
    batch_size: int = 8
    metric_options: MetricOptions = field(default_factory=MetricOptions)
    aggregate: Literal["sample", "scene"] = "sample"
    radius_bins: dict[str, list[tuple[float, float]]] | None = None
    draws: int = 1  # samples a stochastic pipeline draws per target; > 1 adds each image metric of the mean draw


@dataclass
class Suite:
    """A loaded, validated suite."""

    config: SuiteConfig
    doc: Doc
    reader: Any
    protocol: Any
    metrics: dict[str, Metric]
    generator: Any = None

    def prepare(self) -> None:
        """Generate the synthetic stand-in at the dataset root when the suite asks for one (and it is not there)."""
        if self.generator is not None:
            self.generator.ensure(self.reader.root)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def available_fields(self) -> frozenset[str]:
        """State fields this suite gives pipelines (see :mod:`bench.types`)."""
        return BASE_FIELDS | self.reader.provides

    def data_digest(self) -> str:
        """Hash of what decides the samples and their ground truth: dataset and protocol config, with the
        dataset root resolved (two suites naming ``root: data/x`` from different folders read different data),
        and the reader's revision (:class:`bench.data.base.Reader`)."""
        dataset = {**self.doc.data["dataset"], "root": str(Path(self.reader.root).resolve()), "reader_revision": self.reader.revision}
        return Doc({"dataset": dataset, "protocol": self.doc.data["protocol"]}, {}).digest()

    def scoring_digest(self) -> str:
        """Hash of the data (:meth:`data_digest`) and of how predictions are made and scored (``draws``, ``metric_options``,
        and the revision of each metric a fix has revised, :class:`bench.metrics.base.Metric`)."""
        options = json.dumps(dataclasses.asdict(self.config.metric_options), sort_keys=True, default=str)
        revised = ",".join(f"{n}@{m.revision}" for n, m in sorted(self.metrics.items()) if m.revision > 1)
        draws = f"|draws {self.config.draws}" if self.config.draws > 1 else ""
        return hashlib.sha256(f"{self.data_digest()}|{options}{'|' + revised if revised else ''}{draws}".encode()).hexdigest()


def _registered(kind: str, mapping: dict, selector: str, doc: Doc, key: tuple) -> Any:
    """Build the registry entry named by ``mapping[selector]`` with the rest of ``mapping`` as its params."""
    if not isinstance(mapping, dict) or selector not in mapping:
        raise ConfigError(f"'{key[-1]}' needs a '{selector}:' naming one of: {', '.join(registry(kind).names())}", doc.where(key))
    cls = registry(kind).get(mapping[selector], doc.where(key + (selector,)))
    return build(cls, mapping, doc, key, skip=(selector,))


def load_suite(path: str | Path, overrides: list[str] = (), data_root: Path | None = None) -> Suite:
    """Load, override and validate a suite YAML (data on disk is not touched)."""
    doc = load_yaml(path)
    apply_overrides(doc, list(overrides))
    if data_root is not None:
        if not isinstance(doc.data.get("dataset"), dict):
            raise ConfigError("the suite has no 'dataset:' mapping to set --data-root on", doc.where(()))
        doc.data["dataset"]["root"] = str(Path(data_root).resolve())
        doc.origins[("dataset", "root")] = Origin("--data-root")
    cfg = build(SuiteConfig, doc.data, doc)
    cfg.name = cfg.name or Path(path).stem
    reader = _registered("readers", {k: v for k, v in cfg.dataset.items() if k != "generate"}, "reader", doc, ("dataset",))
    generator = None
    if "generate" in cfg.dataset:
        generator = _registered("generators", cfg.dataset["generate"], "kind", doc, ("dataset", "generate"))
    protocol = _registered("protocols", cfg.protocol, "kind", doc, ("protocol",))
    metrics = {m: registry("metrics").get(m, doc.where(("metrics", i))) for i, m in enumerate(cfg.metrics)}
    for i, (name, metric) in enumerate(metrics.items()):
        missing = required_reader_fields(metric) - reader.provides
        if missing:
            flag = sorted(missing)[0].removeprefix("source_")
            raise ConfigError(
                f"metric '{name}' needs ground-truth {flag}, which this dataset config does not load (set dataset.{flag}: true "
                "if the data has it)",
                doc.where(("metrics", i)),
            )
    if cfg.primary_metric is not None and cfg.primary_metric not in metrics:
        raise unknown_name("primary metric", cfg.primary_metric, metrics, doc.where(("primary_metric",)))
    for name, intervals in (cfg.radius_bins or {}).items():
        if not intervals or any(lo > hi for lo, hi in intervals):
            raise ConfigError(f"radius bin '{name}' needs [low, high] intervals with low <= high, got {intervals}",
                              doc.where(("radius_bins", name)))
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {cfg.batch_size}", doc.where(("batch_size",)))
    if cfg.draws < 1:
        raise ConfigError(f"draws must be at least 1, got {cfg.draws}", doc.where(("draws",)))
    return Suite(cfg, doc, reader, protocol, with_mean_draw(with_depth_coverage(metrics), cfg.draws), generator)
