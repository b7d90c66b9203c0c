#!/usr/bin/env python3
"""Train the reference checkpoints and record how each was made in ``checkpoints/MANIFEST.json``.

    .venv/bin/python scripts/train_references.py [--eval-only] [PIPELINE ...]

For each pipeline (default: every pipeline YAML that names a ``checkpoint:``) it runs
``nvsbench train PIPELINE`` with the settings of the pipeline YAML, evaluates the result
against ``identity`` on the quickstart suite (other synthetic objects than the training
ones) and, when the pipeline predicts depth, with the depth metrics (and ``depth_coverage``) on the
depth-pairs stand-in against ``oracle_mesh``, the true-depth upper bound; then writes the manifest entry: exact command, seed,
training-data hash, sha256 of the checkpoint, steps, final loss, the loss variants that
ran, and the eval numbers; a method that does not beat identity also gets its untrained
initialisation evaluated (``untrained_eval``). ``--eval-only`` re-evaluates the committed checkpoints;
``--record-only NAME --train-seconds S`` records a checkpoint ``nvsbench train NAME`` already made.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NVSBENCH = str(Path(sys.executable).parent / "nvsbench")
MANIFEST = ROOT / "checkpoints" / "MANIFEST.json"
EVAL_SUITE = "suites/quickstart.yaml"
DEPTH_EVAL_SUITE = "suites/shapenet_depth_pairs_synthetic.yaml"


def folder_sha256(folder: Path) -> str:
    """sha256 over the sorted relative paths and bytes of every file in ``folder``."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def evaluate(name: str, suite: str, baseline: str, *extra: str, tag: str = "") -> dict:
    """``nvsbench run SUITE`` for ``baseline`` and ``name`` (``extra`` arguments added): {pipeline: {metric: mean, ci95, n}}."""
    out = ROOT / "results" / "reference_eval" / (name + tag) / Path(suite).stem
    subprocess.run([NVSBENCH, "run", suite, "--pipeline", baseline, "--pipeline", name, "--out", str(out), "--no-progress", *extra],
                   cwd=ROOT, check=True)
    summary = json.loads((out / "summary.json").read_text())
    return {p: {m: {"mean": e["mean"], "ci95": e["ci95"], "n": e["n"]} for m, e in r.items() if "mean" in e}
            for p, r in summary["results"].items()}


def evaluations(name: str) -> dict:
    """The manifest's eval fields of ``name``: image metrics on the quickstart objects and, for a
    pipeline that predicts depth, depth metrics on the depth-pairs stand-in."""
    from bench.pipeline import load_pipeline
    from bench.suite import load_suite

    found = {"eval_suite": EVAL_SUITE, "eval": evaluate(name, EVAL_SUITE, "identity")}
    ours, identity = found["eval"][name]["psnr"], found["eval"]["identity"]["psnr"]
    if not ours["ci95"][0] > identity["ci95"][1]:  # does not beat identity at this budget: measure its untrained start
        untrained = ROOT / "results" / "reference_eval" / f"{name}_untrained.pt"
        subprocess.run([NVSBENCH, "train", name, "--steps", "0", "--out", str(untrained), "--no-progress"], cwd=ROOT, check=True)
        found["untrained_eval"] = evaluate(name, EVAL_SUITE, "identity", "--set", f"pipeline.{name}.checkpoint={untrained}", tag="_untrained")
    if "pred_depth" in load_pipeline(name, load_suite(ROOT / DEPTH_EVAL_SUITE).available_fields).provided:
        found |= {"depth_eval_suite": DEPTH_EVAL_SUITE, "depth_eval": evaluate(name, DEPTH_EVAL_SUITE, "oracle_mesh")}
    return found


def sampling_of(doc) -> dict:
    """``{"sampling": {stage: {param: value}}}`` of the stages with sampling parameters (steps, guidance), else {}."""
    from bench.registry import registry

    found = {}
    for spec in doc.data["stages"]:
        params = registry("stages").get(spec["stage"]).sampling_params
        if params:
            found[spec["stage"]] = {k: spec[k] for k in params if k in spec}
    return {"sampling": found} if found else {}


def train_and_record(name: str, train: bool = True, seconds: float | None = None) -> dict:
    """Train ``name`` (or, with ``train`` False, take the checkpoint ``nvsbench train`` made, trained in
    ``seconds``), evaluate it, and return its manifest entry."""
    import torch

    from bench.config import build
    from bench.pipeline import load_pipeline_doc
    from bench.registry import resolve_yaml
    from bench.suite import load_suite
    from bench.train.checkpoint import load_checkpoint, sha256_of
    from bench.train.loop import TrainConfig

    doc, cfg = load_pipeline_doc(resolve_yaml("pipelines", name, "pipeline"))
    tcfg = build(TrainConfig, cfg.train, doc, ("train",))
    command = [NVSBENCH, "train", name, "--no-progress"]
    if train:
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True)
        seconds = time.perf_counter() - start
    state = load_checkpoint(cfg.checkpoint)
    suite = load_suite(tcfg.suite)
    return {
        "pipeline": name,
        "checkpoint": str(cfg.checkpoint.relative_to(ROOT)),
        "sha256": sha256_of(cfg.checkpoint),
        "size_bytes": cfg.checkpoint.stat().st_size,
        "command": " ".join([*(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS",) if k in os.environ), "nvsbench", *command[1:]]),
        "seed": state["seed"],
        "steps": state["step"],
        "final_loss": state["log"][-1]["loss"],
        "losses": state["losses"],
        "train_suite": str(Path(tcfg.suite).relative_to(ROOT)),
        "train_data_sha256": folder_sha256(suite.reader.root),
        "train_seconds": round(seconds, 1) if seconds is not None else None,
        "torch": torch.__version__,
        **sampling_of(doc),
        "made_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **evaluations(name),
    }


def main(argv: list[str]) -> None:
    import argparse

    from bench.pipeline import load_pipeline_doc
    from bench.registry import yaml_names

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pipelines", nargs="*")
    parser.add_argument("--eval-only", action="store_true", help="re-evaluate the committed checkpoints")
    parser.add_argument("--record-only", action="store_true", help="record checkpoints `nvsbench train` already made")
    parser.add_argument("--train-seconds", type=float, help="with --record-only: how long that training took")
    args = parser.parse_args(argv)
    names = args.pipelines or [n for n, p in yaml_names("pipelines").items() if load_pipeline_doc(p)[1].checkpoint is not None]
    for name in names:
        if args.record_only:  # a checkpoint made by `nvsbench train NAME`
            entry = train_and_record(name, train=False, seconds=args.train_seconds)
        elif args.eval_only:
            entry = json.loads(MANIFEST.read_text())[name] | evaluations(name)
        else:
            entry = train_and_record(name)
        # read again just before writing: another run of this script may have recorded other pipelines meanwhile
        manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
        manifest[name] = entry
        tmp = MANIFEST.with_name(f".{MANIFEST.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, MANIFEST)
        print(json.dumps(entry["eval"], indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
