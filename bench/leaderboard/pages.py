"""Writing the leaderboard site: Jinja2 pages with a strict Content-Security-Policy, built aside and moved in place."""

from __future__ import annotations

import base64
import ctypes
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import struct
import time
from collections import defaultdict
from pathlib import Path

from bench.errors import ConfigError
from bench.leaderboard.plots import plot_view, suite_plots
from bench.leaderboard.published import PUBLISHED_CSV, TEMPLATES, Published, load_published, protocol_notes, stand_in, suite_not_comparable
from bench.leaderboard.results import Result, load_result, slug
from bench.leaderboard.tables import SIGNIFICANCE, family_tables, format_cell, metric_family, value_note

MARKER = ".nvsbench-site"  # marks a folder as a site this module built (and may replace)


MAX_FAILURES = 100  # failures listed on a pipeline page (the rest are counted)


GRID_WIDTH = 480  # sample grids narrower than this are shown enlarged by an integer factor (up to 4)


def protocol_summary(config: dict) -> str:
    """The suite's protocol and its parameters in one line, e.g. ``source_targets (sources=[64])``."""
    protocol = dict(config.get("protocol") or {})
    kind = protocol.pop("kind", "?")
    params = ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in protocol.items())
    extras = [f"aggregated per {config['aggregate']}"] if config.get("aggregate") == "scene" else []
    if config.get("radius_bins"):
        extras.append("radius bins " + ", ".join(f"{k} {json.dumps(v)}" for k, v in config["radius_bins"].items()))
    return "; ".join([f"{kind} ({params})" if params else str(kind), *extras])


def data_summary(result: Result) -> str:
    """The dataset reader, split, root, whether it is a generated stand-in (asked for by the suite, or
    found by the run: ``meta.data``), and the run's sample limit (:attr:`Result.sample_limit`). A
    relative root is as the suite's YAML wrote it."""
    config, limit, facts = result.config, result.sample_limit, result.meta.get("data")
    data = config.get("dataset") or {}
    parts = [f"{data.get('reader', '?')} reader"] + ([f"split {data['split']}"] if data.get("split") else [])
    if data.get("root"):
        root = str(data["root"])
        parts.append(f"root {root}" + ("" if Path(root).is_absolute() else " (relative to the suite's YAML)"))
    if isinstance(facts, dict) and facts.get("generated") is not None:
        parts.append(f"generated stand-in ({stand_in(facts)})")
    elif data.get("generate"):
        parts.append(f"synthetic stand-in ({data['generate'].get('kind', '?')})")
    if limit is not None:
        parts.append(f"first {limit} samples only")
    return ", ".join(parts)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _environment():
    """The Jinja2 environment: templates in ``leaderboard/``, autoescaping on for every template."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    css, js = (TEMPLATES / "site.css").read_text(), (TEMPLATES / "site.js").read_text()
    env.globals.update(
        css=Markup(css), js=Markup(js),
        csp=f"default-src 'none'; img-src 'self'; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; base-uri 'none'; form-action 'none'",
        built_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"), plot_view=plot_view,
    )
    return env


def pipeline_page(result: Result, pipe: str) -> str:
    return f"pipeline-{result.slug}.{slug(pipe)}.html"


def copy_visuals(result: Result, pipe: str, site: Path) -> list[dict]:
    """Copy the pipeline's sample grids of the run key in the summary (:func:`bench.visuals.visual_dir`;
    grids of other configs run into the same folder are left out) into ``site/img/<suite>/<pipeline>/``;
    their site paths and captions. None when the summary names no run key or one that is not a plain name."""
    from bench.visuals import visual_dir  # here: importing the builder stays free of torch

    key = str(result.meta.get("run_keys", {}).get(pipe, ""))
    source = visual_dir(result.folder, pipe, key)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", key) or not source.is_dir():
        return []
    target = site / "img" / result.slug / slug(pipe)
    target.mkdir(parents=True, exist_ok=True)
    images = []
    for png in sorted(source.glob("*.png")):
        shutil.copyfile(png, target / png.name)
        width, height = png_size(png)
        zoom = max(1, min(4, math.ceil(GRID_WIDTH / width)))
        images.append({"src": f"img/{result.slug}/{slug(pipe)}/{png.name}", "caption": png.stem,
                       "width": width * zoom, "height": height * zoom})
    return images


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, which the PNG specification puts first (bytes 16-24)."""
    header = path.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n" or header[12:16] != b"IHDR":
        raise ConfigError(f"{path}: not a PNG file")
    return struct.unpack(">II", header[16:24])


def run_metadata(result: Result, pipe: str) -> list[tuple[str, str]]:
    """(label, value) rows describing how the pipeline's results were made."""
    meta = result.meta
    checkpoint = meta.get("checkpoints", {}).get(pipe)
    rows = [
        ("suite", result.suite), ("results folder", str(result.folder)), ("git commit", meta.get("git_commit") or "unknown"),
        ("pipeline config hash", meta.get("config_hashes", {}).get(pipe, "unknown")),
        ("checkpoint", f"{checkpoint['path']} (sha256 {checkpoint['sha256']})" if checkpoint else
         "not recorded separately; the pipeline config hash covers the checkpoint's bytes when it has one"),
        ("suite config hash", meta.get("config_hashes", {}).get("suite", "unknown")),
        ("run key", meta.get("run_keys", {}).get(pipe, "unknown")), ("data key", meta.get("data_key", "unknown")),
        ("seed", str(meta.get("seed"))), ("device", str(meta.get("device"))), ("finished at", str(meta.get("finished_at"))),
        ("wall time of the run (s)", str(meta.get("wall_time_s"))), ("samples", str(result.summary.get("n_samples"))),
        ("sample limit", str(meta.get("limit"))), ("python", str(meta.get("python"))), ("platform", str(meta.get("platform"))),
        ("command", " ".join(map(str, meta.get("command", [])))),
    ]
    rows += [(f"package {k}", str(v)) for k, v in meta.get("packages", {}).items()]
    return rows


def flat_details(details: dict, prefix: str = "") -> list[tuple[str, str]]:
    """A nested ``details`` mapping (e.g. per-class IoU) as (dotted key, value) rows."""
    rows = []
    for key, value in details.items():
        if isinstance(value, dict):
            rows += flat_details(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", f"{value:.4g}" if isinstance(value, float) else str(value)))
    return rows


def metric_summary(metric: str, entry: dict) -> dict:
    """A pipeline page's row for one metric: its summary entry, cell, per-radius-bin cells and details."""
    return {"name": metric, "family": metric_family(metric), "entry": entry, "cell": format_cell(entry),
            "by_radius": [(b, format_cell(e)) for b, e in entry.get("by_radius", {}).items()],
            "details": flat_details(entry.get("details", {}))}


def _assign_slugs(results: list[Result]) -> None:
    """Unique page slugs: a suite met again (another results folder) gets the first free of -2, -3, ...
    (free of every slug taken so far and of every suite's own slug, so a suite named "a-2" keeps its name)."""
    own = {slug(r.suite) for r in results}
    used: set[str] = set()
    for r in results:
        base = slug(r.suite)
        r.slug = base if base not in used else next(f"{base}-{i}" for i in itertools.count(2) if f"{base}-{i}" not in used | own)
        used.add(r.slug)


def render_site(results: list[Result], published: list[Published], site: Path) -> Path:
    """Write every page of the site into ``site`` (an empty folder); returns the index path."""
    env = _environment()
    _assign_slugs(results)
    suites_built = defaultdict(list)
    for r in results:
        suites_built[r.suite].append(r)
    index = []
    for r in results:
        hrefs = {p: pipeline_page(r, p) for p in r.pipelines}
        mine = [p for p in published if r.suite in p.suites]
        tables = family_tables(r, mine, hrefs)
        unavailable = [(c.metric, c.unavailable) for t in tables for c in t.columns if c.unavailable]
        page = f"suite-{r.slug}.html"
        not_comparable_with = suite_not_comparable(r, mine)
        (site / page).write_text(env.get_template("suite.html.j2").render(
            r=r, hrefs=hrefs, tables=tables, published=mine, plots=suite_plots(r), unavailable=unavailable,
            protocol=protocol_summary(r.config), data=data_summary(r), significance=SIGNIFICANCE,
            not_comparable=not_comparable_with, protocol_notes=protocol_notes(mine), value_note=value_note,
        ))
        for pipe in r.pipelines:
            failures = r.summary.get("failures", {}).get(pipe, [])
            metrics = [metric_summary(m, r.entry(pipe, m)) for m in r.metrics]
            (site / hrefs[pipe]).write_text(env.get_template("pipeline.html.j2").render(
                r=r, pipe=pipe, suite_page=page, metadata=run_metadata(r, pipe), metrics=metrics,
                images=copy_visuals(r, pipe, site), failures=failures[:MAX_FAILURES], n_failures=len(failures),
            ))
        best = [p for p in r.pipelines if r.entry(p, r.summary.get("primary_metric") or "").get("best")]
        index.append({"r": r, "href": page, "protocol": protocol_summary(r.config), "data": data_summary(r),
                      "best": best[0] if best else None, "n_published": len({p.key for p in mine}), "not_comparable": not_comparable_with})
    groups: dict[tuple[str, str], list[Published]] = defaultdict(list)
    for p in published:
        groups[(p.dataset, p.split_protocol)].append(p)
    links = {name: [f"suite-{r.slug}.html" for r in rs] for name, rs in suites_built.items()}
    (site / "published.html").write_text(env.get_template("published.html.j2").render(groups=groups, links=links, value_note=value_note))
    (site / "index.html").write_text(env.get_template("index.html.j2").render(suites=index, n_published=len(published)))
    (site / MARKER).write_text("built by nvsbench (bench/leaderboard/pages.py); replaced whole by the next build\n")
    return site / "index.html"


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``, glibc 2.28+,
    see renameat2(2)): a reader sees the old site or the new one, never none. False where the system
    or the file system cannot (then nothing happened)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _check_out(out: Path) -> None:
    """Refuse to replace anything but an absent or empty folder or a site built here."""
    if out.exists() and not (out.is_dir() and ((out / MARKER).is_file() or not any(out.iterdir()))):
        raise ConfigError(f"{out} exists and is not a leaderboard site (no {MARKER} in it): choose another --out")


def build_site(results_dirs: list[Path], out: Path, published: Path | None = None) -> Path:
    """Build the leaderboard site from results folders into ``out``; returns the path of ``index.html``.

    ``published`` is a CSV in the columns of ``leaderboard/published_results.csv`` (default: that
    file); its rows are matched to suites by ``leaderboard/published_suites.yaml``. The site is
    written to a temporary folder next to ``out`` that replaces ``out`` at the end (an existing
    ``out`` must be a site built here, or empty).
    """
    if not results_dirs:
        raise ConfigError("leaderboard build needs at least one results folder")
    out = Path(out)
    _check_out(out)
    results = [load_result(Path(d)) for d in results_dirs]
    rows = load_published(Path(published) if published else PUBLISHED_CSV)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        render_site(results, rows, tmp)
        if not out.exists():
            os.replace(tmp, out)
        elif exchange_paths(tmp, out):  # tmp now holds the old site
            shutil.rmtree(tmp)
        else:  # no atomic exchange here: two renames, with an instant without a site between them
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "index.html"
