"""What the benchmark modules share: tables, timing, peak memory of a child process, the machine,
and cached synthetic datasets (under ``data/bench/``, made once with ``nvsbench``'s own generators).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
NVSBENCH = Path(PYTHON).parent / "nvsbench"
DATA = ROOT / "data" / "bench"  # generated benchmark sets (data/ is not versioned)


@dataclass
class Table:
    """One section's result: a markdown table and notes (findings, checks) printed under it."""

    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    @classmethod
    def pairs(cls, rows: Sequence[tuple[str, str]], notes: Sequence[str] = ()) -> Table:
        """A two-column (measurement, value) table."""
        return cls(["measurement", "value"], [list(r) for r in rows], list(notes))

    def markdown(self) -> list[str]:
        lines = ["| " + " | ".join(self.headers) + " |", "|" + "---|" * len(self.headers)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return lines + ([""] + [f"- {n}" for n in self.notes] if self.notes else [])


def env(threads: int | None = 1, **extra: str) -> dict[str, str]:
    """This process's environment with ``OMP_NUM_THREADS`` (and ``MKL_NUM_THREADS``) set to ``threads``."""
    out = dict(os.environ, **extra)
    if threads is not None:
        out["OMP_NUM_THREADS"] = out["MKL_NUM_THREADS"] = str(threads)
    return out


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_rate(fn: Callable[[], object], n: int, repeats: int = 3) -> float:
    """``n`` items per second of ``fn()``, best of ``repeats`` after a warm-up call."""
    fn()
    return n / min(timed(fn) for _ in range(repeats))


def wall(cmd: list[str], repeats: int = 7, threads: int | None = 1) -> float:
    """Median wall seconds of a command (after one warm-up run)."""
    times = [timed(lambda: subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, env=env(threads)))
             for _ in range(repeats + 1)]
    return statistics.median(times[1:])


@dataclass
class Child:
    """A finished child command: wall seconds, peak resident memory in MiB, minor page faults, exit code, stdout and stderr."""

    seconds: float
    peak_mib: float
    minor_faults: int
    code: int
    stdout: str
    stderr: str

    def check(self, what: str) -> Child:
        if self.code != 0:
            raise RuntimeError(f"{what} exited with {self.code}: {self.stderr.strip()[-2000:]}")
        return self


# Runs argv[1:] and prints wall seconds, the peak RSS and the minor page faults of its child. getrusage(RUSAGE_CHILDREN) is the maximum
# over every waited-for descendant, so each measurement needs a fresh process around the command: this one.
_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - start
sys.stderr.write(proc.stderr)
sys.stdout.write(proc.stdout)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": seconds, "maxrss_kib": usage.ru_maxrss, "minflt": usage.ru_minflt, "code": proc.returncode}))
"""


def run_child(cmd: list[str], threads: int | None = 1, cwd: Path = ROOT) -> Child:
    """Run ``cmd`` in a fresh measuring process: wall time, peak RSS (Linux ``ru_maxrss``, KiB; of the largest
    process, e.g. one torchrun worker) and minor page faults (summed) of ``cmd`` and its descendants."""
    proc = subprocess.run([PYTHON, "-c", _MEASURE, *cmd], cwd=cwd, capture_output=True, text=True, env=env(threads))
    *out, last = proc.stdout.rstrip("\n").split("\n")
    stats = json.loads(last)
    return Child(stats["seconds"], stats["maxrss_kib"] / 1024, stats["minflt"], stats["code"], "\n".join(out), proc.stderr)


def git_commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout
    return (head or "unknown") + ("-dirty" if dirty.strip() else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> str:
    try:
        kib = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal:"))
        return f"{kib / 1024**2:.1f} GiB"
    except (OSError, StopIteration):
        return "unknown"


def machine() -> str:
    """One line: CPU model, logical cores, RAM, OS, Python and torch versions."""
    torch_version = subprocess.run([PYTHON, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True).stdout.strip()
    return (f"{_cpu_model()}, {os.cpu_count()} logical cores, {_ram_gib()} RAM, {platform.platform()}, "
            f"Python {platform.python_version()}, torch {torch_version}")


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def objects_set(objects: int, views: int, size: int = 64) -> Path:
    """A synthetic SRN-layout object set (depth and masks included), generated on first use under ``data/bench/``."""
    from bench.data.synth import ObjectSet

    spec = ObjectSet(objects=objects, views=views, size=size, radius=(1.3, 1.6), seed=0)
    return spec.ensure(DATA / f"objects_{objects}x{views}_{size}px")


def write_suite(folder: Path, root: Path, name: str = "bench", metrics: str = "[psnr, ssim, l1]") -> Path:
    """A suite over an SRN-layout set: source view 0, every other view a target (one sample each), batch 8."""
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\n"
        f"dataset: {{reader: srn, root: {root}, near: 0.5, far: 2.5}}\n"
        "protocol: {kind: source_targets, sources: [0]}\n"
        f"metrics: {metrics}\n"
        "pipelines: [identity]\n"
        "batch_size: 8\n"
    )
    return path


def nvsbench_run(suite: Path, out: Path, *args: str) -> list[str]:
    """The ``nvsbench run`` command line for ``suite`` into ``out``, without progress bars."""
    return [str(NVSBENCH), "run", str(suite), "--out", str(out), "--no-progress", *args]


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def mib(path: Path) -> float:
    """Total size of the files under ``path``, in MiB."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1024**2
