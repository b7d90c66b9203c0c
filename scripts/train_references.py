#!/usr/bin/env python3
"""Train the reference checkpoints and record how each was made in ``checkpoints/MANIFEST.json``.

    .venv/bin/python scripts/train_references.py [--eval-only] [PIPELINE ...]

For each pipeline (default: every pipeline YAML that names a ``checkpoint:``) it runs
``nvsbench train PIPELINE`` with the settings of the pipeline YAML, evaluates the result
against ``identity`` on the quickstart suite (other synthetic objects than the training
ones) and, when the pipeline predicts depth, with the depth metrics (and ``depth_coverage``) on the
depth-pairs stand-in against ``oracle_mesh``, the true-depth upper bound; then writes the manifest entry: exact command, seed,
training-data hash, sha256 of the checkpoint, steps, final loss, the loss variants that
ran, and the eval numbers. ``--eval-only`` re-evaluates the committed checkpoints.
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


def evaluate(name: str, suite: str, baseline: str) -> dict:
    """``nvsbench run SUITE`` for ``baseline`` and ``name``: {pipeline: {metric: mean, ci95, n}}."""
    out = ROOT / "results" / "reference_eval" / name / Path(suite).stem
    subprocess.run([NVSBENCH, "run", suite, "--pipeline", baseline, "--pipeline", name, "--out", str(out), "--no-progress"],
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
    if "pred_depth" in load_pipeline(name, load_suite(ROOT / DEPTH_EVAL_SUITE).available_fields).provided:
        found |= {"depth_eval_suite": DEPTH_EVAL_SUITE, "depth_eval": evaluate(name, DEPTH_EVAL_SUITE, "oracle_mesh")}
    return found


def train_and_record(name: str) -> dict:
    """Train ``name``, evaluate it, and return its manifest entry."""
    import torch

    from bench.config import build
    from bench.pipeline import load_pipeline_doc
    from bench.registry import resolve_yaml
    from bench.suite import load_suite
    from bench.train import TrainConfig
    from bench.train.checkpoint import load_checkpoint, sha256_of

    doc, cfg = load_pipeline_doc(resolve_yaml("pipelines", name, "pipeline"))
    tcfg = build(TrainConfig, cfg.train, doc, ("train",))
    command = [NVSBENCH, "train", name, "--no-progress"]
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
        "train_seconds": round(seconds, 1),
        "torch": torch.__version__,
        "made_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **evaluations(name),
    }


def main(args: list[str]) -> None:
    from bench.pipeline import load_pipeline_doc
    from bench.registry import yaml_names

    train = "--eval-only" not in args
    names = [a for a in args if a != "--eval-only"]
    if not names:
        names = [n for n, p in yaml_names("pipelines").items() if load_pipeline_doc(p)[1].checkpoint is not None]
    for name in names:
        entry = train_and_record(name) if train else json.loads(MANIFEST.read_text())[name] | evaluations(name)
        # read again just before writing: another run of this script may have recorded other pipelines meanwhile
        manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
        manifest[name] = entry
        tmp = MANIFEST.with_name(f".{MANIFEST.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, MANIFEST)
        print(json.dumps(entry["eval"], indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
