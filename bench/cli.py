"""The ``nvsbench`` command line. Nothing heavy is imported at module level:
``nvsbench --help`` and ``nvsbench list ...`` never import torch.
"""

from __future__ import annotations

import gc
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from bench.errors import ConfigError

app = typer.Typer(
    help="nvsbench: evaluate novel view synthesis methods on standard suites.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Make and check datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
leaderboard_app = typer.Typer(help="Build the leaderboard site.", no_args_is_help=True)
app.add_typer(leaderboard_app, name="leaderboard")

POSE_METRICS = "rot_err_deg,trans_err,trans_angle_deg,center_err,rra_15,rra_30,rta_15,rta_30,joint_acc_15,joint_acc_30,auc_30"
AdaptersOpt = Annotated[
    list[Path] | None, typer.Option("--adapters", help="Folder of adapter .py files to register (repeatable).")
]


class Kind(str, Enum):
    suites = "suites"
    pipelines = "pipelines"
    stages = "stages"
    metrics = "metrics"
    adapters = "adapters"
    readers = "readers"
    protocols = "protocols"
    generators = "generators"
    losses = "losses"


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


class Launcher(str, Enum):
    none = "none"
    torchrun = "torchrun"


LAUNCHER_OPTIONS = ("--launcher", "--nproc-per-node")


@app.command()
def run(
    suite: Annotated[str, typer.Argument(help="Suite YAML file or suite name (see `nvsbench list suites`).")],
    pipeline: Annotated[
        list[str] | None, typer.Option("--pipeline", "-p", help="Pipeline name or YAML; replaces the suite's list (repeatable).")
    ] = None,
    data_root: Annotated[Path | None, typer.Option(help="Replaces the suite's dataset root.")] = None,
    out: Annotated[Path | None, typer.Option(help="Results folder [default: results/<suite>/].")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate only the first N samples.")] = None,
    device: Annotated[Device, typer.Option(help="Torch device.")] = Device.cpu,
    seed: Annotated[int, typer.Option(help="Seed for stochastic pipelines and the bootstrap.")] = 0,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config value: dotted.key=value (suite), or pipeline.<name>.key=value."),
    ] = None,
    adapters: AdaptersOpt = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    visuals: Annotated[int, typer.Option(min=0, help="Save image grids of the first N samples in OUT/visuals/.")] = 8,
    prefetch: Annotated[int, typer.Option(min=0, help="Batches loaded ahead by a background thread (0: none).")] = 2,
    launcher: Annotated[
        Launcher, typer.Option(help="torchrun: rerun this command under torchrun on this machine, one process per --nproc-per-node.")
    ] = Launcher.none,
    nproc_per_node: Annotated[int, typer.Option(min=1, help="Processes for --launcher torchrun (each scores part of the samples).")] = 1,
) -> None:
    """Evaluate pipelines on a suite; print mean, 95 % CI and n; write summary.json and results.sqlite."""
    if nproc_per_node != 1 and launcher is not Launcher.torchrun:
        raise ConfigError("--nproc-per-node needs --launcher torchrun")
    from bench.allocator import keep_freed_memory

    keep_freed_memory()  # tensor buffers freed per batch stay in the heap instead of being faulted in again (bench/allocator.py)
    from bench.registry import resolve_yaml
    from bench.runner.execute import run as run_suite
    from bench.runner.plan import RunOptions, load_run
    from bench.runner.summary import all_failed, format_table

    opts = RunOptions(pipeline, data_root, out, limit, device.value, seed, set_ or [], adapters or [], progress, visuals, prefetch)
    suite_path = resolve_yaml("suites", suite, "suite")
    if launcher is Launcher.torchrun:
        load_run(suite_path, opts)  # a config error is reported here, once, before any process starts
        _exec_torchrun(nproc_per_node)
    summary, folder = run_suite(suite_path, opts)
    if summary is None:  # a rank other than 0 of a distributed run: rank 0 reports
        return
    typer.echo(format_table(summary))
    typer.echo(f"\n{summary['n_samples']} samples; results in {folder}/summary.json and {folder}/results.sqlite")
    if summary["meta"]["not_summarized"]:
        typer.echo(f"note: {folder}/results.sqlite also holds runs of {', '.join(summary['meta']['not_summarized'])}, which this "
                   "summary (and a leaderboard built from it) leaves out; name them with --pipeline too to summarize them")
    failed = all_failed(summary)
    if failed:
        typer.echo(f"nvsbench: every sample failed for {', '.join(failed)} (first failures above)", err=True)
        raise typer.Exit(1)


def _exec_torchrun(nproc: int) -> None:
    """Replace this process by ``python -m torch.distributed.run --standalone`` running the same
    ``nvsbench`` arguments (without the launcher options) in ``nproc`` processes on this machine."""
    if "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ:
        raise ConfigError("--launcher torchrun inside a torchrun worker: drop --launcher (torchrun already started this process)")
    args = _without_options(sys.argv[1:], LAUNCHER_OPTIONS)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "bench", *args]
    typer.echo(f"nvsbench: launching {' '.join(command[1:])}", err=True)
    sys.stdout.flush()
    os.execv(sys.executable, command)


def _without_options(args: list[str], names: tuple[str, ...]) -> list[str]:
    """``args`` without the options ``names`` and their values (``--name value`` or ``--name=value``)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not arg.startswith(tuple(f"{n}=" for n in names)):
            kept.append(arg)
    return kept


@app.command("list")
def list_(
    kind: Annotated[Kind, typer.Argument(help="What to list.")],
    adapters: AdaptersOpt = None,
) -> None:
    """List registered suites, pipelines, stages, metrics, adapters, readers or protocols."""
    from bench.registry import load_adapters, registry, yaml_names

    if kind in (Kind.suites, Kind.pipelines):
        entries = {name: str(path) for name, path in yaml_names(kind.value).items()}
    else:
        if kind is Kind.adapters:
            load_adapters(adapters or [])
        entries = registry(kind.value).sources()
    width = max((len(n) for n in entries), default=0)
    for name, source in entries.items():
        typer.echo(f"{name:<{width}}  {source}")


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="A suite or pipeline YAML.")],
    adapters: AdaptersOpt = None,
) -> None:
    """Check a suite or pipeline YAML (keys, types, names, stage requirements) without running it."""
    from bench.config import load_yaml
    from bench.pipeline import load_pipeline
    from bench.registry import load_adapters
    from bench.runner.plan import RunOptions, load_run
    from bench.types import BASE_FIELDS

    load_adapters(adapters or [])
    doc = load_yaml(file)
    if "stages" in doc.data or "adapter" in doc.data:
        load_pipeline(str(file), BASE_FIELDS | {"source_depth", "source_mask"})
        typer.echo(f"{file}: valid pipeline")
    else:
        suite, pipelines = load_run(file, RunOptions(adapter_dirs=adapters or []))
        typer.echo(f"{file}: valid suite '{suite.name}' with pipelines {', '.join(p.name for p in pipelines)}")


@app.command("train")
def train_(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name or YAML with a 'train:' section.")],
    suite: Annotated[str | None, typer.Option(help="Training suite (default: the pipeline's train.suite).")] = None,
    steps: Annotated[int | None, typer.Option(min=0, help="Train until this step (default: train.steps); 0 writes the initial weights.")] = None,
    out: Annotated[Path | None, typer.Option(help="Checkpoint file (default: the pipeline's checkpoint).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint's step, optimiser and RNG state.")] = False,
    device: Annotated[Device, typer.Option(help="Torch device.")] = Device.cpu,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a stage pipeline on a training suite; writes a checkpoint and a loss log next to it."""
    from bench.registry import resolve_yaml
    from bench.train.loop import train

    suite_path = resolve_yaml("suites", suite, "suite") if suite else None
    result = train(pipeline, suite_path, steps, out, resume, device.value, progress)
    typer.echo(f"step {result.step}: loss {result.final_loss:.5f} in {result.seconds:.1f} s; checkpoint {result.checkpoint}")


@app.command()
def score(
    pred: Annotated[Path, typer.Option(help="Folder of predictions.")],
    gt: Annotated[Path, typer.Option(help="Folder of ground truth; files are matched by relative path.")],
    metrics: Annotated[str, typer.Option(help="Comma-separated metric names, all of one file kind.")] = "psnr,ssim,l1",
    json_: Annotated[bool, typer.Option("--json", help="Print JSON: {per_image: {name: {metric: value}}, mean: {...}}.")] = False,
    median_scaling: Annotated[bool, typer.Option(help="Depth: scale each prediction by median(gt)/median(pred).")] = False,
    min_depth: Annotated[float, typer.Option(help="Depth: valid ground truth is above this.")] = 1e-3,
    max_depth: Annotated[float | None, typer.Option(help="Depth: valid ground truth is at most this.")] = None,
) -> None:
    """Score predictions written by any program (PNG images; depth as 16-bit PNG in mm or .npy; label PNGs)."""
    from bench.metrics.base import DepthOptions
    from bench.score import score_folders

    table = score_folders(pred, gt, _names(metrics), DepthOptions(median_scaling, min_depth, max_depth))
    typer.echo(table.to_json() if json_ else table.to_text())


@app.command("score-poses")
def score_poses(
    pred: Annotated[Path, typer.Option(help="JSON file {name: 4x4 cam2world} of estimated cameras.")],
    gt: Annotated[Path, typer.Option(help="JSON file {name: 4x4 cam2world} of ground-truth cameras.")],
    metrics: Annotated[str, typer.Option(help="Comma-separated pose metric names.")] = POSE_METRICS,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON with the same shape as `score --json`.")] = False,
) -> None:
    """Score estimated camera poses (OpenCV cam2world) against ground truth, one row per camera."""
    from bench.score import score_pose_files

    table = score_pose_files(pred, gt, _names(metrics))
    typer.echo(table.to_json() if json_ else table.to_text("camera"))


def _names(csv: str) -> list[str]:
    names = [n.strip() for n in csv.split(",") if n.strip()]
    if not names:
        raise ConfigError("--metrics is empty")
    return names


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="Output folder, laid out as the real dataset.")],
    kind: Annotated[str, typer.Option(help="What to generate (see `nvsbench list generators`).")] = "objects",
    objects: Annotated[int | None, typer.Option(min=1, help="Number of objects or scenes.")] = None,
    views: Annotated[int | None, typer.Option(min=1, help="Views per object or scene.")] = None,
    size: Annotated[int | None, typer.Option(min=16, help="Image size in pixels.")] = None,
    radius: Annotated[str | None, typer.Option(help="Camera radius range A,B (equal for a fixed radius).")] = None,
    seed: Annotated[int | None, typer.Option(min=0)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any other generator parameter: key=value.")] = None,
) -> None:
    """Generate a synthetic stand-in dataset in a real dataset's on-disk layout."""
    from bench.config import Doc, Origin, apply_overrides, build
    from bench.registry import registry

    given = {"objects": objects, "views": views, "size": size, "seed": seed}
    params = {k: v for k, v in given.items() if v is not None}
    if radius is not None:
        try:
            params["radius"] = [float(x) for x in radius.split(",")]
        except ValueError:
            params["radius"] = None
        if params["radius"] is None or len(params["radius"]) != 2:
            raise ConfigError(f"--radius expects A,B (two numbers), got '{radius}'")
    doc = Doc(params, {(k,): Origin(f"--{k}") for k in params})
    apply_overrides(doc, set_ or [])
    spec = build(registry("generators").get(kind, "--kind"), doc.data, doc)
    folder = spec.generate(out)
    typer.echo(f"wrote a synthetic '{kind}' set to {folder}")


@data_app.command("check")
def data_check(
    suite: Annotated[str, typer.Argument(help="Suite YAML file or suite name.")],
    data_root: Annotated[Path | None, typer.Option(help="Replaces the suite's dataset root.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Verify a dataset against its suite: files present and decodable, counts, sizes, cameras."""
    from bench.data.check import check_dataset
    from bench.registry import resolve_yaml
    from bench.suite import load_suite

    report = check_dataset(load_suite(resolve_yaml("suites", suite, "suite"), data_root=data_root), progress)
    typer.echo("\n".join(report.lines()))
    typer.echo("OK")


@data_app.command("samples")
def data_samples(
    suite: Annotated[str, typer.Argument(help="Suite YAML file or suite name.")],
    data_root: Annotated[Path | None, typer.Option(help="Replaces the suite's dataset root.")] = None,
) -> None:
    """List the protocol's samples, one per line: sample id, scene, source view ids, target view ids (tab-separated).

    The ids are those of results.sqlite and of the `precomputed` adapter's file names; no image is read.
    """
    from bench.registry import resolve_yaml
    from bench.suite import load_suite

    loaded = load_suite(resolve_yaml("suites", suite, "suite"), data_root=data_root)
    loaded.prepare()
    for spec in loaded.protocol.samples(loaded.reader):
        typer.echo("\t".join([spec.id, spec.scene, ",".join(spec.source_views), ",".join(spec.target_views)]))


@leaderboard_app.command("build")
def leaderboard_build(
    results: Annotated[list[Path], typer.Argument(help="Results folders of `nvsbench run`.")],
    out: Annotated[Path, typer.Option(help="Site folder; an earlier site there is replaced.")] = Path("site"),
    published: Annotated[Path | None, typer.Option(help="Published-results CSV [default: leaderboard/published_results.csv].")] = None,
) -> None:
    """Build the static leaderboard site (self-contained, works from file://)."""
    from bench.leaderboard.pages import build_site

    typer.echo(f"leaderboard: {build_site(results, out, published)}")


def main() -> None:
    """Console entry point: a ConfigError exits with code 2 and one line on stderr."""
    try:
        app()
    except ConfigError as exc:
        typer.echo(f"nvsbench: error: {exc}", err=True)
        sys.exit(2)


def entry() -> None:
    """The ``nvsbench`` program (and ``python -m bench``): :func:`main`, then a quicker interpreter exit.

    Before the interpreter shuts down, every object left is moved out of the garbage collector's
    reach (``gc.freeze``): its final passes over the ~180,000 objects that importing torch creates took
    0.36 s of a 0.54 s exit here. Objects are still freed by reference counting, atexit handlers run
    and the standard streams are flushed; only objects held in reference cycles are left to the OS
    (results, summaries and checkpoints are closed and renamed before this point). Tests call
    :func:`main`, so their process keeps a normal collector.
    """
    try:
        main()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
