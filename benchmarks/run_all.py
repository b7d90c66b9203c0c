#!/usr/bin/env python3
"""Measurements that are not tests, written with the machine they ran on to ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/run_all.py                          # every benchmark
    .venv/bin/python benchmarks/run_all.py --only memory            # one benchmark (repeatable); other sections are kept
    .venv/bin/python benchmarks/run_all.py --quick --out /tmp/r.md  # every benchmark shrunk to seconds (a smoke test)

``--quick`` figures are not meaningful and are written only where ``--out`` says (default: printed only).
Benchmark datasets are generated once into ``data/bench/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import compute
import harness
import sampling
from common import ROOT, Table, git_commit, load_average, machine

RESULTS = ROOT / "benchmarks" / "RESULTS.md"


@dataclass(frozen=True)
class Section:
    name: str  # for --only
    title: str
    about: str  # what is measured, printed above the table
    run: Callable[[bool], Table]


SECTIONS = [
    Section("harness_overhead", "Harness overhead",
            "`nvsbench run` with the `identity` pipeline on a synthetic SRN-layout set against `benchmarks/loop.py`, a hand-written "
            "loop with the same reader (PNG decode included), the same psnr/ssim/l1 functions and batches of 8, but no results "
            "database, checks, bootstrap or image grids. Each is a fresh process; wall is measured around the process, the second "
            "row inside it (harness: `meta.wall_time_s` of summary.json, which stops where the summary starts; loop: its own timer "
            "after imports).", harness.harness_overhead),
    Section("metric_throughput", "Metric throughput",
            "psnr + ssim + l1 on the same random pairs, in process, 2 torch threads: nvsbench's batched metrics against "
            "torchmetrics, pyiqa and scikit-image (best of 3 after a warm-up).", compute.metric_throughput),
    Section("multiprocess", "Two processes on two cores",
            "`nvsbench run` of a compute-bound pipeline in one process with 1 or 2 torch threads, and in two processes of "
            "1 thread each through the torchrun launcher. Speed-up is against 1 process x 1 thread, end-to-end wall; the last "
            "column checks that every configuration scored the same samples to the same mean.", harness.multiprocess),
    Section("cli_start", "CLI start time",
            "Wall of commands that must not import torch (target < 0.5 s), median of 7 after a warm-up.", harness.cli_start_time),
    Section("synth_rate", "Synthetic data generation",
            "`nvsbench data synth` as a command, for the objects generator (SRN layout, RGB + depth + mask PNGs per view) and "
            "the rooms generator (RealEstate10K layout, RGB frames).", compute.synth_rate),
    Section("memory", "Peak memory against the number of samples",
            "Peak RSS (`getrusage` of the child) of `nvsbench run` with `identity` on two generated sets, the second with 10x "
            "the samples; the issue requires the larger run to stay within 10 % of the smaller.", harness.memory),
    Section("pipeline_forward", "Pipeline forward time",
            "One sample (one source, one target) through every stage pipeline in `pipelines/`, built without loading checkpoints "
            "(forward time does not depend on the weights), 1 torch thread, best of 3 after a warm-up. Rays/s is the volume "
            "renderer stage alone (every pixel of the target is a ray).", compute.pipeline_forward),
    Section("point_rasterizer", "Point rasterizer (oracle_reproject)",
            "pytorch3d's CPU point rasterizer stage alone, one target view of a fully valid depth map, 1 torch thread.",
            compute.point_rasterizer),
    Section("diffusion_samplers", "Diffusion samplers",
            "Seconds and network evaluations per generated view for each sampler at two step counts.", sampling.diffusion_samplers),
    Section("harness_3dim", "Harness overhead on a generative method",
            "3DiM on one orbit sample (8 views generated in order) through `nvsbench run`, against the same pipeline called "
            "in process on the same sample, 1 torch thread.", sampling.harness_overhead_3dim),
    Section("quickstart", "Quickstart",
            "`nvsbench run suites/quickstart.yaml` (identity, oracle_reproject, pixel_field, genvs_render on 90 samples), "
            "default threads.", harness.quickstart),
]


def render(section: Section, table: Table, stamp: str) -> str:
    return "\n".join([f"## {section.title}", "", f"`--only {section.name}`. {section.about}", "", stamp, "", *table.markdown(), ""])


def header(note: str | None) -> str:
    lines = ["# Benchmark results", "",
             f"Machine: {machine()}.", "",
             "Regenerate with `.venv/bin/python benchmarks/run_all.py` (one table: `--only NAME`); each table says when and at which "
             "commit it was measured, and the 1-minute load average when it started (2 cores: a load above ~0.2 means other work "
             "shared the machine).", ""]
    return "\n".join(lines + ([f"Note: {note}", ""] if note else []))


def merge(old: str, new_sections: dict[str, str]) -> str:
    """``old`` RESULTS.md text with the sections named in ``new_sections`` replaced (others kept, in ``SECTIONS`` order)."""
    kept: dict[str, str] = {}
    for chunk in old.split("\n## ")[1:]:
        for s in SECTIONS:
            if f"`--only {s.name}`" in chunk:
                kept[s.name] = "## " + chunk.rstrip("\n") + "\n"
    kept.update(new_sections)
    return "\n".join(kept[s.name] for s in SECTIONS if s.name in kept)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=[s.name for s in SECTIONS], help="run only this benchmark (repeatable)")
    parser.add_argument("--quick", action="store_true", help="shrink every benchmark to seconds; not meaningful figures")
    parser.add_argument("--out", type=Path, help=f"results file [default: {RESULTS.relative_to(ROOT)}; with --quick: print only]")
    parser.add_argument("--note", help="a line for the header, e.g. what else was running")
    args = parser.parse_args(argv)
    out = args.out or (None if args.quick else RESULTS)
    chosen = [s for s in SECTIONS if not args.only or s.name in args.only]
    commit = git_commit()
    done: dict[str, str] = {}
    for section in chosen:
        load = load_average()
        start = time.perf_counter()
        table = section.run(args.quick)
        stamp = (f"_Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}, load average {load} at start, "
                 f"{time.perf_counter() - start:.0f} s{', QUICK sizes' if args.quick else ''}._")
        done[section.name] = render(section, table, stamp)
        print(done[section.name], flush=True)
    if out is not None:
        previous = out.read_text() if args.only and out.is_file() else ""
        out.write_text(header(args.note) + "\n" + merge(previous, done))
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
