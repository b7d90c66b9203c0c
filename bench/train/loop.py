"""``nvsbench train``: fit a stage pipeline on a training suite, from its YAML's ``train:`` section.

A pipeline YAML that can be trained has::

    checkpoint: ../checkpoints/my_method.pt     # where `train` writes and `run` reads weights
    train:
      suite: ../suites/objects_train_synthetic.yaml
      steps: 2000
      batch_size: 8
      seed: 0
      optimizer: {kind: adam, lr: 0.001}
      grad_clip: 1.0
      losses:
        - {kind: image_l1, weight: 1.0}
        - {kind: my_loss, weight: 0.1, some_param: 3}

Batches are random (source, target) view pairs of random scenes of the training suite,
drawn from a seeded generator. A checkpoint holds the weights, the optimiser state, the
step, the seed, the hash of the pipeline's ``stages`` (the model), the hash of the training
suite's data config, and the loss log; it is written atomically and read with
``torch.load(weights_only=True)``. ``--resume`` continues from it bit for bit.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm import tqdm

from bench.config import Doc, build, coerce_kwargs
from bench.errors import ConfigError
from bench.pipeline import StagePipeline, load_pipeline_doc
from bench.registry import registry, resolve_yaml
from bench.runner.plan import SampleLoader, collate
from bench.suite import Suite, load_suite
from bench.train.checkpoint import load_checkpoint, save_checkpoint
from bench.train.losses import Loss
from bench.types import Sample, SampleSpec

CHECKPOINT_FORMAT = 1


@dataclass
class OptimizerConfig:
    """``train.optimizer``: Adam (Kingma & Ba 2015) or AdamW (Loshchilov & Hutter 2019)."""

    kind: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0

    def build(self, params) -> torch.optim.Optimizer:
        cls = torch.optim.Adam if self.kind == "adam" else torch.optim.AdamW
        return cls(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)


@dataclass
class TrainConfig:
    """A pipeline YAML's ``train:`` section."""

    suite: Path | None = None
    steps: int = 1000
    batch_size: int = 8
    seed: int = 0
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    grad_clip: float = 1.0
    losses: list[dict] = field(default_factory=lambda: [{"kind": "image_l1"}])
    log_every: int = 10
    save_every: int = 200


@dataclass
class WeightedLoss:
    name: str
    loss: Loss
    weight: float
    params: dict[str, Any]


def build_losses(cfg: TrainConfig, doc: Doc, available: set[str]) -> list[WeightedLoss]:
    """The weighted losses of ``train.losses``, checked against the fields the pipeline provides."""
    out = []
    for i, spec in enumerate(cfg.losses):
        key = ("train", "losses", i)
        if not isinstance(spec, dict) or "kind" not in spec:
            raise ConfigError("each loss is a mapping with a 'kind:' name", doc.where(key))
        loss = registry("losses").get(spec["kind"], doc.where(key + ("kind",)))
        weight = spec.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool):
            raise ConfigError(f"loss weight must be a number, got {weight!r}", doc.where(key + ("weight",)))
        params = coerce_kwargs(loss.fn, spec, doc, key, skip=("kind", "weight"), provided=("state", "target"))
        missing = [f for f in loss.requires if f not in available]
        if missing:
            raise ConfigError(f"loss '{spec['kind']}' needs '{missing[0]}', which no stage of the pipeline provides", doc.where(key))
        out.append(WeightedLoss(spec["kind"], loss, float(weight), params))
    return out


def random_pairs(suite: Suite, rng: random.Random) -> SampleSpec:
    """A (source -> target) pair of distinct random views of a random scene of the training suite."""
    scene = rng.choice(suite.reader.scenes())
    src, tgt = rng.sample(suite.reader.view_ids(scene), 2)
    return SampleSpec(f"{scene}/{src}-{tgt}", scene, (src,), (tgt,))


def targets_of(samples: list[Sample], device: str) -> dict[str, torch.Tensor]:
    """Ground truth of the targets: ``image`` (B, T, 3, H, W), and ``depth`` / ``mask`` (B, T, H, W) when read."""
    out = {"image": torch.stack([torch.stack([v.image for v in s.targets]) for s in samples]).to(device)}
    for name in ("depth", "mask"):
        if all(getattr(v, name) is not None for s in samples for v in s.targets):
            out[name] = torch.stack([torch.stack([getattr(v, name) for v in s.targets]) for s in samples]).to(device)
    return out


@dataclass
class TrainResult:
    checkpoint: Path
    step: int
    final_loss: float
    seconds: float


def train(pipeline_ref: str, suite_path: Path | None = None, steps: int | None = None, out: Path | None = None,
          resume: bool = False, device: str = "cpu", progress: bool = True) -> TrainResult:
    """Train a stage pipeline; see the module docstring."""
    doc, cfg = load_pipeline_doc(resolve_yaml("pipelines", pipeline_ref, "pipeline"))
    if cfg.train is None:
        raise ConfigError(f"pipeline '{cfg.name}' has no 'train:' section", doc.where(()))
    tcfg: TrainConfig = build(TrainConfig, cfg.train, doc, ("train",))
    suite_file = suite_path or tcfg.suite
    if suite_file is None:
        raise ConfigError("no training suite: set train.suite in the pipeline YAML or pass --suite", doc.where(("train",)))
    suite = load_suite(resolve_yaml("suites", str(suite_file), "suite"))
    torch.manual_seed(tcfg.seed)  # before building: the initial weights depend on the seed only
    pipeline = load_pipeline_doc_to_model(doc, cfg, suite)
    losses = build_losses(tcfg, doc, pipeline.provided)
    checkpoint = out or cfg.checkpoint
    if checkpoint is None:
        raise ConfigError("no checkpoint path: set 'checkpoint:' in the pipeline YAML or pass --out", doc.where(()))
    total = tcfg.steps if steps is None else steps

    rng = random.Random(tcfg.seed)
    optimizer = tcfg.optimizer.build(pipeline.parameters())
    step, log = 0, []
    if resume:
        state = load_checkpoint(checkpoint)
        _check_compatible(state, pipeline, suite, checkpoint)
        pipeline.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, log = state["step"], state["log"]
        torch.set_rng_state(state["torch_rng"])
        rng.setstate(_tuple_state(state["python_rng"]))
    suite.prepare()
    pipeline.to(device).train()
    loader = SampleLoader(suite.reader)
    start = time.perf_counter()

    def payload() -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "pipeline": cfg.name, "model": pipeline.state_dict(),
            "optimizer": optimizer.state_dict(), "step": step, "seed": tcfg.seed, "model_digest": pipeline.model_digest,
            "suite_digest": suite.data_digest(), "log": log, "torch_rng": torch.get_rng_state(),
            "python_rng": _list_state(rng.getstate()),
            "losses": [{"kind": w.name, "weight": w.weight, **w.params, "uses": w.loss.describe()} for w in losses],
        }

    with tqdm(total=total, initial=step, desc=f"train {cfg.name}", unit="step", disable=not progress) as bar:
        while step < total:
            samples = [loader.load(random_pairs(suite, rng)) for _ in range(tcfg.batch_size)]
            target = targets_of(samples, device)
            # generative stages noise the target while training: only here does the state hold target images
            state = pipeline.forward_train({**collate(samples, suite, tcfg.seed, device), "target_image": target["image"]})
            terms = {w.name: _apply(w, state, target) for w in losses}
            total_loss = sum(w.weight * terms[w.name] for w in losses)
            optimizer.zero_grad(set_to_none=True)
            total_loss.backward()
            torch.nn.utils.clip_grad_norm_(pipeline.parameters(), tcfg.grad_clip)
            optimizer.step()
            step += 1
            if step % tcfg.log_every == 0 or step == total:
                log.append({"step": step, "loss": total_loss.item(), **{k: v.item() for k, v in terms.items()}})
                bar.set_postfix(loss=f"{total_loss.item():.4f}")
            if step % tcfg.save_every == 0 or step == total:
                save_checkpoint(checkpoint, payload())
            bar.update(1)
    if total == 0:  # the untrained initialisation, the baseline a model that does not beat identity is compared with
        save_checkpoint(checkpoint, payload())
    (checkpoint.with_suffix(".log.jsonl")).write_text("".join(json.dumps(r) + "\n" for r in log))
    return TrainResult(checkpoint, step, log[-1]["loss"] if log else float("nan"), time.perf_counter() - start)


def _apply(w: WeightedLoss, state: dict, target: dict) -> torch.Tensor:
    try:
        return w.loss(state, target, **w.params)
    except KeyError as exc:
        raise ConfigError(
            f"loss '{w.name}' needs {exc} in the training state, which the pipeline does not produce while training "
            "(volume renderers render random rays when training: use ray_mse, or n_rays_train: 0)"
        ) from None


def load_pipeline_doc_to_model(doc: Doc, cfg, suite: Suite) -> StagePipeline:
    from bench.pipeline import build_stage_pipeline

    if cfg.stages is None:
        raise ConfigError(f"pipeline '{cfg.name}' is an adapter; only stage pipelines are trained here", doc.where(()))
    return build_stage_pipeline(doc, cfg, suite.available_fields, load_weights=False)


def _check_compatible(state: dict, pipeline: StagePipeline, suite: Suite, path: Path) -> None:
    if state.get("model_digest") != pipeline.model_digest:
        raise ConfigError(f"checkpoint {path} was trained for different stages than pipeline '{pipeline.name}' has now")
    if state.get("suite_digest") != suite.data_digest():
        raise ConfigError(f"checkpoint {path} was trained on different data than this training suite")


def _list_state(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _tuple_state(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
