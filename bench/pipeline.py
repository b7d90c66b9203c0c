"""Pipelines: a YAML composition of stages, or an adapter around an external method.

A pipeline YAML (``pipelines/<name>.yaml``)::

    name: oracle_reproject
    description: ...
    stages:                       # run in order on the batched state (bench.types)
      - stage: unproject_depth
      - stage: point_rasterizer
        radius_px: 0.75           # the stage's own typed parameters

or, for an external method::

    name: my_method
    adapter: my_adapter           # registered adapter name
    params: {weights: ...}        # the adapter's typed constructor parameters

Loading checks that every stage's ``requires`` is met by the suite or an earlier stage, and
that the pipeline provides ``pred_image``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bench.adapter import Adapter
from bench.config import Doc, apply_overrides, build, load_yaml
from bench.errors import ConfigError
from bench.registry import registry, resolve_yaml, yaml_names
from bench.train.checkpoint import load_checkpoint, sha256_of
from bench.types import PREDICTION_FIELDS, Prediction, Sample


@dataclass
class PipelineConfig:
    """Top-level keys of a pipeline YAML."""

    name: str
    description: str = ""
    stages: list[dict] | None = None
    adapter: str | None = None
    params: dict = field(default_factory=dict)
    checkpoint: Path | None = None
    train: dict | None = None


class StagePipeline(nn.Module):
    """Stages run in order on a batched state; returns one :class:`Prediction` per sample.

    ``digest`` identifies the whole config (and checkpoint bytes) for results; ``model_digest``
    only the ``stages`` section, which a checkpoint must match; ``provided`` is every state
    field available after the last stage.
    """

    def __init__(self, name: str, stages: list[nn.Module], digest: str, model_digest: str, provided: set[str]):
        super().__init__()
        self.name, self.digest, self.model_digest, self.provided = name, digest, model_digest, provided
        self.outputs: frozenset[str] | None = frozenset(f for f in (*PREDICTION_FIELDS, "nfe") if f"pred_{f}" in provided)
        self.needs = frozenset(field_ for stage in stages for field_ in getattr(stage, "requires", ()))  # the state it reads
        self.stages = nn.ModuleList(stages)
        self.checkpoint: dict | None = None  # {"path", "sha256"} of the weights loaded

    def load(self, device: str) -> None:
        self.to(device).eval()

    def forward_train(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Run the stages with gradients; returns the full state (for the losses)."""
        state = dict(state)
        for stage in self.stages:
            state.update(stage(state))
        return state

    @torch.no_grad()
    def predict_batch(self, samples: list[Sample], state: dict[str, Tensor]) -> list[Prediction]:
        state = self.forward_train(state)
        optional = {name: state.get(f"pred_{name}") for name in PREDICTION_FIELDS[1:]}
        nfe = state.get("pred_nfe")
        return [
            Prediction(state["pred_image"][i], **{k: v[i] if v is not None else None for k, v in optional.items()},
                       nfe=None if nfe is None else int(nfe[i]))
            for i in range(len(samples))
        ]


class AdapterPipeline:
    """An :class:`Adapter` run sample by sample.

    Before each sample, the global random generators (torch's on every device, numpy's legacy one,
    Python's ``random``) are seeded with the sample's own seed (``state["seed"]``, from the run seed
    and the sample id), so a stochastic method's draws for a sample do not depend on the samples
    scored before it: a resumed run, or one spread over several processes, scores it the same.
    """

    def __init__(self, name: str, adapter: Adapter, digest: str):
        self.name, self.adapter, self.digest = name, adapter, digest
        self.outputs: frozenset[str] | None = None if adapter.outputs is None else frozenset(adapter.outputs)
        self.needs: frozenset[str] = frozenset({"seed"})  # an adapter reads the Sample; of the batched state, only the seeds
        self.checkpoint: dict | None = None

    def load(self, device: str) -> None:
        self.adapter.load(device)

    @torch.no_grad()
    def predict_batch(self, samples: list[Sample], state: dict[str, Tensor]) -> list[Prediction]:
        preds = []
        for sample, seed in zip(samples, state["seed"].tolist()):
            seed_global_rngs(seed)
            preds.append(self.adapter.predict(sample.blind()))  # targets without their ground truth
        return preds


def seed_global_rngs(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global generator and Python's ``random`` with ``seed``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


Pipeline = StagePipeline | AdapterPipeline


def _check_fields(needs: tuple[str, ...], available: set[str], what: str, where: str) -> None:
    missing = [f for f in needs if f not in available]
    if missing:
        raise ConfigError(
            f"{what} requires '{missing[0]}', which neither the suite nor an earlier stage provides "
            f"(available: {', '.join(sorted(available))})",
            where,
        )


def _build_stages(cfg: PipelineConfig, doc: Doc, available: set[str]) -> list[nn.Module]:
    stages = []
    for i, spec in enumerate(cfg.stages):
        key = ("stages", i)
        if not isinstance(spec, dict) or "stage" not in spec:
            raise ConfigError("each stage is a mapping with a 'stage:' name", doc.where(key))
        cls = registry("stages").get(spec["stage"], doc.where(key + ("stage",)))
        stage = build(cls, spec, doc, key, skip=("stage",))
        _check_fields(cls.requires, available, f"stage '{spec['stage']}'", doc.where(key))
        available |= set(cls.provides)
        stages.append(stage)
    return stages


def _model_params(stage: nn.Module, spec: dict) -> dict:
    """A stage's YAML without its ``sampling_params``: what a checkpoint must match (the run key keeps them all)."""
    return {k: v for k, v in spec.items() if k not in getattr(stage, "sampling_params", ())}


def load_pipeline_doc(path: Path, overrides: list[str] = ()) -> tuple[Doc, PipelineConfig]:
    """A pipeline YAML, overridden and checked against :class:`PipelineConfig`."""
    doc = load_yaml(path)
    apply_overrides(doc, list(overrides))
    cfg = build(PipelineConfig, doc.data, doc)
    if (cfg.stages is None) == (cfg.adapter is None):
        raise ConfigError("a pipeline has exactly one of 'stages:' or 'adapter:'", doc.where(()))
    return doc, cfg


def build_stage_pipeline(doc: Doc, cfg: PipelineConfig, available: frozenset[str], load_weights: bool = True) -> StagePipeline:
    """Build and check the stages; with ``load_weights``, load the checkpoint the YAML names."""
    fields = set(available)
    stages = _build_stages(cfg, doc, fields)
    _check_fields(("pred_image",), fields, f"pipeline '{cfg.name}' output", doc.where(("stages",)))
    model_digest = Doc({"stages": [_model_params(st, spec) for st, spec in zip(stages, doc.data["stages"])]}, {}).digest()
    digest = doc.digest()
    pipeline = StagePipeline(cfg.name, stages, digest, model_digest, fields)
    if load_weights and cfg.checkpoint is not None:
        where = doc.where(("checkpoint",))
        if not cfg.checkpoint.is_file():
            raise ConfigError(f"checkpoint not found: {cfg.checkpoint} (make it with `nvsbench train {cfg.name}`)", where)
        state = load_checkpoint(cfg.checkpoint)
        if state.get("model_digest") != model_digest:
            raise ConfigError(f"checkpoint {cfg.checkpoint} was trained for different stages than this pipeline has", where)
        try:
            pipeline.load_state_dict(state["model"])
        except (RuntimeError, KeyError) as exc:
            raise ConfigError(f"checkpoint {cfg.checkpoint} does not fit the pipeline: {exc}", where) from None
        sha = sha256_of(cfg.checkpoint)
        pipeline.checkpoint = {"path": str(cfg.checkpoint), "sha256": sha}
        pipeline.digest = hashlib.sha256(f"{digest}|{sha}".encode()).hexdigest()
    return pipeline


def load_pipeline(name_or_path: str, available: frozenset[str], overrides: list[str] = (), where: str | None = None) -> Pipeline:
    """Load and check a pipeline given by YAML path, pipeline name, or adapter name.

    ``available`` names the state fields the suite provides; ``overrides`` are
    ``key=value`` assignments into the pipeline YAML.
    """
    adapters = registry("adapters")
    if name_or_path in adapters.names() and name_or_path not in yaml_names("pipelines"):
        doc = Doc({"name": name_or_path, "adapter": name_or_path}, {}, None)
        apply_overrides(doc, list(overrides))
        cfg = build(PipelineConfig, doc.data, doc)
    else:
        doc, cfg = load_pipeline_doc(resolve_yaml("pipelines", name_or_path, "pipeline", where), overrides)
    if cfg.stages is not None:
        return build_stage_pipeline(doc, cfg, available)
    cls = adapters.get(cfg.adapter, doc.where(("adapter",)))
    adapter: Any = build(cls, cfg.params, doc, ("params",))
    _check_fields(cls.requires, set(available), f"adapter '{cfg.adapter}'", doc.where(("adapter",)))
    pipeline = AdapterPipeline(cfg.name, adapter, doc.digest())
    fingerprint = adapter.fingerprint()
    if fingerprint is not None:  # the files it reads: a rerun after they changed scores again
        pipeline.digest = hashlib.sha256(f"{pipeline.digest}|inputs {fingerprint}".encode()).hexdigest()
    if cfg.checkpoint is not None:  # the adapter's weights: given to it, and in the run key like a stage pipeline's
        if not cfg.checkpoint.is_file():
            raise ConfigError(f"checkpoint not found: {cfg.checkpoint}", doc.where(("checkpoint",)))
        sha = sha256_of(cfg.checkpoint)
        adapter.checkpoint = cfg.checkpoint
        pipeline.checkpoint = {"path": str(cfg.checkpoint), "sha256": sha}
        pipeline.digest = hashlib.sha256(f"{pipeline.digest}|{sha}".encode()).hexdigest()
    return pipeline
