#!/usr/bin/env python3
"""Set-up and the two everyday jobs, with nothing but Python 3.11 on the machine.

    python3 tasks.py quickstart   # create .venv, install, run suites/quickstart.yaml, build the leaderboard site
    python3 tasks.py test         # create .venv, install with test extras (and Debian's chromium), run the tests

The virtual environment is ``.venv`` in the repository root; the stack is pinned in
``constraints.txt``. Installing is skipped when neither file changed since the last install.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".nvsbench-installed"


def sh(*cmd: str | Path) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True)


def install() -> None:
    """Create .venv and install the project, pinned, unless already done for these files."""
    digest = hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in ("pyproject.toml", "constraints.txt"))).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    if sys.version_info[:2] != (3, 11):
        print(f"warning: the stack is pinned for Python 3.11, this is {sys.version.split()[0]}", file=sys.stderr)
    if not (BIN / "python").exists():
        venv.create(VENV, with_pip=True)
    sh(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    sh(BIN / "python", "-m", "pip", "install", "--quiet", "-c", "constraints.txt", "-e", ".[test]")
    STAMP.write_text(digest)


def quickstart() -> None:
    install()
    sh(BIN / "nvsbench", "run", "suites/quickstart.yaml")
    sh(BIN / "nvsbench", "leaderboard", "build", "results/quickstart", "--out", "site")


def install_chromium() -> None:
    """Debian's chromium for the leaderboard's browser test; without it that test is skipped."""
    if shutil.which("chromium") or not shutil.which("apt-get"):
        return
    try:
        sh("apt-get", "install", "-y", "-q", "chromium")
    except subprocess.CalledProcessError:
        print("warning: could not install chromium; the browser test will be skipped", file=sys.stderr)


def test() -> None:
    install()
    install_chromium()
    sh(BIN / "python", "-m", "pytest", "-q")


JOBS = {"install": install, "quickstart": quickstart, "test": test}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in JOBS:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(JOBS)}}}")
    try:
        JOBS[sys.argv[1]]()
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
