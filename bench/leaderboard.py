"""The leaderboard: a static, self-contained web site built from results folders.

:func:`build_site` (``nvsbench leaderboard build RESULTS_DIR... --out SITE_DIR``) reads what
:mod:`bench.runner` stores in each folder -- ``summary.json``, ``results.sqlite`` (per-sample
scores and per-sample geometry, :mod:`bench.store`) and ``visuals/<pipeline>/<run key>/*.png``
(:mod:`bench.visuals`; the run key of ``summary.json``) -- and writes

- ``index.html``: every suite with its data, protocol, number of samples and of pipelines, and
  whether the published rows matched to it are comparable with the run (:func:`not_comparable`);
- ``suite-<suite>.html``: one table per metric family, sorted by the suite's primary metric and
  sortable in the browser; a cell is "mean ± half-width of the 95 % CI (n)", marked when the
  paired test against the best row gives p < 0.05, with what the mean is over when the summary
  says (``details["mean_over"]``, e.g. mIoU's classes); unavailable metrics show their reason;
  published rows matched to the suite are a separate, never ranked, part of each table, with
  their citation and notes, labelled "not comparable" with the reason unless the run's data is
  the published split; SVG plots of per-sample scores against the source-target angle, the target
  camera distance (the first radius bin shaded) and the trajectory length;
- ``pipeline-<suite>.<pipeline>.html``: run metadata, every metric, the sample image grids
  (copied into ``img/``) and the failures;
- ``published.html``: every row of the published-results file with its citation.

Pages are rendered with Jinja2 from ``leaderboard/*.j2`` with autoescaping on, so any text from
configs, results or the published file shows as text. The CSS and JavaScript
(``leaderboard/site.css``, ``site.js``) are inlined, and each page's Content-Security-Policy
allows nothing but them (by hash) and the site's own images: the site works from ``file://`` and
fetches nothing when viewed. It is built in a temporary folder next to ``out`` and then moved in
place; an existing ``out`` is replaced only when it is a site built here.
"""

from __future__ import annotations

import base64
import csv
import ctypes
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import sqlite3
import struct
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import build, load_yaml
from bench.errors import ConfigError
from bench.registry import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "leaderboard"
PUBLISHED_CSV = TEMPLATES / "published_results.csv"
PUBLISHED_SUITES = TEMPLATES / "published_suites.yaml"
CSV_COLUMNS = ("dataset", "split_protocol", "method", "metric", "value", "higher_is_better",
               "source_paper", "source_arxiv_id", "table", "notes")
FAMILY_ORDER = ("image", "depth", "pose", "consistency", "segmentation", "distribution", "other")
SIGNIFICANCE = 0.05
MARKER = ".nvsbench-site"  # marks a folder as a site this module built (and may replace)
MAX_POINTS = 1500  # points drawn per series of a scatter plot (every k-th sample beyond)
MAX_FAILURES = 100  # failures listed on a pipeline page (the rest are counted)
GRID_WIDTH = 480  # sample grids narrower than this are shown enlarged by an integer factor (up to 4)
#: Okabe & Ito (2008), "Color Universal Design": distinguishable with colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999")


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Point:
    """One stored per-sample score with the geometry of its sample (``samples`` table of :mod:`bench.store`)."""

    pipeline: str
    metric: str
    sample: str
    value: float
    angle_deg: float
    radius: float
    n_targets: int


@dataclass
class Result:
    """One results folder: its ``summary.json``, its per-sample points, and its page slug on the site."""

    folder: Path
    summary: dict
    points: list[Point]
    slug: str = ""

    @property
    def suite(self) -> str:
        return str(self.summary.get("suite", ""))

    @property
    def meta(self) -> dict:
        return self.summary.get("meta", {})

    @property
    def config(self) -> dict:
        return self.meta.get("suite_config", {})

    @property
    def pipelines(self) -> list[str]:
        return list(self.summary.get("results", {}))

    @property
    def metrics(self) -> list[str]:
        """Metric names in the suite's order (then any other found in the results)."""
        names = [str(m) for m in self.config.get("metrics", [])]
        for entries in self.summary.get("results", {}).values():
            names += [m for m in entries if m not in names]
        return names

    def entry(self, pipeline: str, metric: str) -> dict:
        return self.summary["results"].get(pipeline, {}).get(metric, {})

    @property
    def sample_limit(self) -> int | None:
        """The run's ``--limit`` when it may have left samples out: None when unset, or when fewer
        samples than the limit were found (then the run scored every sample)."""
        limit, n = self.meta.get("limit"), self.summary.get("n_samples")
        return None if limit is None or (isinstance(n, int) and n < limit) else int(limit)

    def failed_samples(self, pipeline: str) -> int:
        """Distinct samples with a failure (the summary holds one record per sample and failing step or metric)."""
        return len({f.get("sample") for f in self.summary.get("failures", {}).get(pipeline, [])})


def load_result(folder: Path) -> Result:
    """Read a results folder; a missing or unreadable ``summary.json`` is a ConfigError naming it."""
    path = folder / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no summary.json (is {folder} a results folder of `nvsbench run`?)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the summary: {exc}") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("results"), dict):
        raise ConfigError(f"{path}: not an nvsbench summary (no 'results' mapping)")
    return Result(folder, summary, load_points(folder / "results.sqlite", summary))


def load_points(db_path: Path, summary: dict) -> list[Point]:
    """Per-sample values joined with sample geometry, for every run key of the summary.

    Every sample stored under a run key is used (a folder reused with a larger ``--limit`` may
    hold more samples than the summary counts). Without the database or its ``samples`` table
    (results schema < 4) there are no points, and so no plots.
    """
    meta = summary.get("meta", {})
    pipeline_of = {key: pipe for pipe, key in meta.get("run_keys", {}).items()}
    if not db_path.is_file() or not pipeline_of:
        return []
    db = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"scores", "samples"} <= tables:
            return []
        marks = ",".join("?" * len(pipeline_of))
        rows = db.execute(
            "SELECT s.run_key, s.metric, s.sample, s.value, g.angle_deg, g.radius, g.n_targets FROM scores s "
            f"JOIN samples g ON g.sample = s.sample AND g.data_key = ? WHERE s.value IS NOT NULL AND s.run_key IN ({marks}) "
            "ORDER BY s.sample",
            (meta.get("data_key"), *pipeline_of),
        ).fetchall()
    except sqlite3.Error as exc:
        raise ConfigError(f"{db_path}: cannot read the results database: {exc}") from None
    finally:
        db.close()
    return [Point(pipeline_of[key], metric, sample, value, angle, radius, n) for key, metric, sample, value, angle, radius, n in rows]


@dataclass(frozen=True)
class Published:
    """A row of the published-results file (its columns verbatim) and the suites it is shown on."""

    dataset: str
    split_protocol: str
    method: str
    metric: str
    value: str
    higher_is_better: str
    source_paper: str
    source_arxiv_id: str
    table: str
    notes: str
    suites: tuple[str, ...] = ()
    our_metric: str | None = None  # the nvsbench metric it reports, when the mapping names one
    mapping_note: str = ""  # the mapping's notes on the row's (dataset, split_protocol), for all its rows
    metric_note: str = ""  # the mapping's note on the row's metric (``metric_notes``), for this row only
    splits: tuple[Split | None, ...] = ()  # the data each of ``suites`` must have to be comparable, None if unknown

    def split_for(self, suite: str) -> Split | None:
        """The split the row was measured on, as the mapping entry matching it to ``suite`` records it."""
        return dict(zip(self.suites, self.splits)).get(suite)

    @property
    def key(self) -> tuple[str, ...]:
        """What identifies one published method's row: method, protocol and source."""
        return (self.method, self.dataset, self.split_protocol, self.source_paper, self.source_arxiv_id, self.table)


@dataclass(frozen=True)
class Split:
    """The data a published protocol was measured on: ``split:`` of a ``published_suites.yaml`` entry,
    compared with what a run records of its data (``meta.data``, :func:`bench.runner.data_facts`)."""

    scenes: int
    samples: int  # under the suite's protocol
    image_size: tuple[int, int]  # (H, W)


def load_published(csv_path: Path, mapping_path: Path = PUBLISHED_SUITES) -> list[Published]:
    """Rows of a published-results CSV (columns :data:`CSV_COLUMNS`), matched to suites by the mapping YAML."""
    try:
        with csv_path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(f"{csv_path}: published results need the columns {', '.join(CSV_COLUMNS)}; missing {', '.join(missing)}")
            rows = [{c: (row[c] or "").strip() for c in CSV_COLUMNS} for row in reader]
    except OSError as exc:
        raise ConfigError(f"{csv_path}: cannot read published results: {exc}") from None
    metrics, suites = _load_mapping(mapping_path)
    out = []
    for row in rows:
        matches = [m for m in suites if (m["dataset"], m["split_protocol"]) == (row["dataset"], row["split_protocol"])]
        notes = "; ".join(dict.fromkeys(str(m.get("note", "")) for m in matches if m.get("note")))
        metric_notes = "; ".join(dict.fromkeys(str(m["metric_notes"][row["metric"]]) for m in matches if row["metric"] in m["metric_notes"]))
        out.append(Published(**row, suites=tuple(str(m["suite"]) for m in matches), our_metric=metrics.get(row["metric"]), mapping_note=notes,
                             metric_note=metric_notes, splits=tuple(m["split"] for m in matches)))
    return out


def _load_mapping(path: Path) -> tuple[dict[str, str], list[dict]]:
    """The ``metrics`` and ``suites`` of ``leaderboard/published_suites.yaml`` (see its header); each
    entry's ``split`` as a :class:`Split` (None when absent) and ``metric_notes`` as a dict."""
    doc = load_yaml(path)  # the configs' loader: errors at file:line, aliases refused
    metrics, suites = doc.data.get("metrics", {}), doc.data.get("suites", [])
    if not isinstance(metrics, dict) or not isinstance(suites, list):
        raise ConfigError(f"{path}: expected 'metrics:' (a mapping) and 'suites:' (a list)")
    entries = []
    for i, entry in enumerate(suites):
        if not isinstance(entry, dict) or not {"dataset", "split_protocol", "suite"} <= set(entry):
            raise ConfigError(f"{path}: suites[{i}] needs dataset, split_protocol and suite")
        if not isinstance(entry.get("metric_notes", {}), dict):
            raise ConfigError("'metric_notes' must map CSV metric names to notes", doc.where(("suites", i, "metric_notes")))
        split = build(Split, entry["split"], doc, ("suites", i, "split")) if "split" in entry else None
        entries.append({**entry, "split": split, "metric_notes": entry.get("metric_notes", {})})
    return {str(k): str(v) for k, v in metrics.items()}, entries


# --------------------------------------------------------------------------- cells and tables


@dataclass(frozen=True)
class Cell:
    """A table cell: its text, the value the browser sorts on ("" for none) and its tooltip."""

    text: str = "–"
    sort: str = ""
    title: str = ""
    best: bool = False
    significant: bool = False  # differs from the best row, p < SIGNIFICANCE
    unavailable: str = ""
    over: str = ""  # what the mean is over, when the summary entry says (``details["mean_over"]``)


def ci_decimals(half: float) -> int:
    """Decimals that show a CI half-width ``half`` > 0 with two significant digits (0 to 6)."""
    return min(6, max(0, 1 - math.floor(math.log10(half))))


def format_cell(entry: dict) -> Cell:
    """A summary entry ``{mean, ci95, n, best, p_vs_best}`` as "mean ± half-CI (n)".

    The half-width is half the 95 % bootstrap interval (which need not be symmetric: the
    tooltip gives the interval itself), shown with two significant digits and the mean to the
    same decimals. Without an interval (one sample, set-level statistics): "mean (n)". What the
    mean is over (``details["mean_over"]``, e.g. mIoU's classes) goes with it.
    """
    if "unavailable" in entry:
        return Cell("n/a", title=f"unavailable: {entry['unavailable']}", unavailable=str(entry["unavailable"]))
    mean = entry.get("mean")
    if mean is None:
        return Cell("–", title="no sample was scored")
    n, ci, p = entry.get("n"), entry.get("ci95"), entry.get("p_vs_best")
    if not ci:
        text, title = f"{mean:.4g} ({n})", "no confidence interval"
    elif ci[1] <= ci[0]:
        text, title = f"{mean:.4g} ± 0 ({n})", f"95 % CI [{ci[0]:.6g}, {ci[1]:.6g}]"
    else:
        d = ci_decimals((ci[1] - ci[0]) / 2)
        text, title = f"{mean:.{d}f} ± {(ci[1] - ci[0]) / 2:.{d}f} ({n})", f"95 % CI [{ci[0]:.{d + 1}f}, {ci[1]:.{d + 1}f}]"
    if entry.get("best"):
        title += "; best row"
    elif p is not None:
        title += f"; p = {p:.2g} against the best row"
    over = str(entry.get("details", {}).get("mean_over", ""))
    if over:
        title += f"; mean over {over}"
    return Cell(text, repr(float(mean)), title, bool(entry.get("best")), p is not None and p < SIGNIFICANCE, over=over)


@dataclass(frozen=True)
class Column:
    metric: str
    higher_is_better: bool
    unavailable: str = ""  # the reason, when the metric ran for no pipeline


@dataclass
class Row:
    pipeline: str
    href: str
    cells: list[Cell]
    failures: int


@dataclass
class PublishedRow:
    """One published method's values in a table's columns ("" where it reports none), the notes of
    those values (the CSV's ``notes`` and the mapping's ``metric_notes``, prefixed with the CSV metric
    name where the values' notes differ), and why the row is not comparable with the run ("" if it is)."""

    source: Published
    values: list[str]
    notes: str = ""
    not_comparable: str = ""


@dataclass
class Table:
    id: str
    family: str
    columns: list[Column]
    rows: list[Row]
    published: list[PublishedRow]
    sort_key: str  # a metric, or "pipeline"
    sort_desc: bool
    protocol_notes: list[tuple[str, str]] = field(default_factory=list)  # ("dataset · protocol", mapping note) of its published rows


def metric_family(name: str) -> str:
    """The family of a registered metric (:data:`bench.metrics.base.FAMILIES`), "other" for an unknown name."""
    from bench.registry import registry

    try:
        return registry("metrics").get(name).family
    except ConfigError:
        return "other"


def sort_rows(rows: list[Row], index: int, desc: bool) -> list[Row]:
    """Rows by the sort value of column ``index`` (stable); rows without a value last, as the browser does."""
    scored = sorted((r for r in rows if r.cells[index].sort), key=lambda r: float(r.cells[index].sort), reverse=desc)
    return scored + [r for r in rows if not r.cells[index].sort]


def family_tables(result: Result, published: list[Published], pipeline_href: dict[str, str]) -> list[Table]:
    """One table per metric family of the suite, its rows sorted by the primary metric if the family
    has it (else by its first metric that ran), best first."""
    families: dict[str, list[str]] = defaultdict(list)
    for m in result.metrics:
        families[metric_family(m)].append(m)
    primary = result.summary.get("primary_metric")
    tables = []
    for family in (f for f in FAMILY_ORDER if f in families):
        columns = [_column(result, m) for m in families[family]]
        rows = [
            Row(p, pipeline_href[p], [format_cell(result.entry(p, c.metric)) for c in columns], result.failed_samples(p))
            for p in result.pipelines
        ]
        ran = [c for c in columns if not c.unavailable]
        key = next((c for c in ran if c.metric == primary), ran[0] if ran else None)
        if key is None:
            sort_key, desc = "pipeline", False
            rows.sort(key=lambda r: r.pipeline)
        else:
            sort_key, desc = key.metric, key.higher_is_better
            rows = sort_rows(rows, columns.index(key), desc)
        mine = published_rows(published, [c.metric for c in columns])
        for row in mine:
            row.not_comparable = not_comparable(result, row.source.split_for(result.suite))
        tables.append(Table(f"t-{family}", family, columns, rows, mine, sort_key, desc, protocol_notes([r.source for r in mine])))
    return tables


def protocol_notes(rows: list[Published]) -> list[tuple[str, str]]:
    """The mapping's note of each (dataset, split_protocol) among ``rows``, once each, in file order."""
    notes = {f"{p.dataset} · {p.split_protocol}": p.mapping_note for p in rows if p.mapping_note}
    return list(notes.items())


def image_size_text(size: object) -> str:
    """``[H, W]`` as "WxH px" (the way papers write image sizes), anything else as it is."""
    return f"{size[1]}x{size[0]} px" if isinstance(size, (list, tuple)) and len(size) == 2 else str(size)


def not_comparable(result: Result, split: Split | None) -> str:
    """Why the run's numbers cannot be read beside published numbers measured on ``split``; "" when they can.

    Comparable means: the data is not a generated stand-in (no ``synth.json`` at its root, as the run
    recorded in ``meta.data``), every sample was scored (no cutting ``--limit``), and the dataset's scene
    count, sample count under the protocol and image size are the published split's (the mapping's
    ``split``). Decided from the data the run recorded, never from the suite's name.
    """
    data = result.meta.get("data")
    if not isinstance(data, dict):
        return "this run recorded nothing about its data (a summary written before runs recorded it); rerun it to compare"
    reasons = []
    generated = data.get("generated")
    if generated is not None:
        reasons.append(f"the data is a generated stand-in ({stand_in(data)}), not the published data")
    if result.sample_limit is not None:
        reasons.append(f"this run scored only the first {result.sample_limit} samples")
    if generated is None and split is None:
        reasons.append("leaderboard/published_suites.yaml records no split for these rows to check the data against")
    elif generated is None:
        found = {"scenes": data.get("scenes"), "samples": data.get("samples"), "image size": data.get("image_size")}
        wanted = {"scenes": split.scenes, "samples": split.samples, "image size": list(split.image_size)}
        show = {"image size": image_size_text}
        differ = [f"{k} {show.get(k, str)(found[k])} (published: {show.get(k, str)(wanted[k])})" for k in wanted if found[k] != wanted[k]]
        if differ:
            reasons.append("the data is not the published split: " + ", ".join(differ))
    return "; ".join(reasons)


def stand_in(data: dict) -> str:
    """A generated stand-in's format (from its ``synth.json``), scene count and image size, in words."""
    fmt = data["generated"].get("format") or "synth.json unreadable"
    return f"{fmt}, {data.get('scenes')} scenes, {image_size_text(data.get('image_size'))}"


def suite_not_comparable(result: Result, published: list[Published]) -> list[str]:
    """The distinct reasons (:func:`not_comparable`) the suite's published rows are not comparable with the run."""
    return list(dict.fromkeys(r for r in (not_comparable(result, p.split_for(result.suite)) for p in published) if r))


def _column(result: Result, metric: str) -> Column:
    entries = [result.entry(p, metric) for p in result.pipelines]
    entries = [e for e in entries if e] or [{}]
    reasons = [e.get("unavailable") for e in entries]
    return Column(metric, bool(entries[0].get("higher_is_better", True)), str(reasons[0]) if all(reasons) else "")


def published_rows(published: list[Published], metrics: list[str]) -> list[PublishedRow]:
    """The published methods that report at least one of ``metrics``, one row each, in file order."""
    grouped: dict[tuple, dict[str, Published]] = {}
    for p in published:
        if p.our_metric in metrics:
            grouped.setdefault(p.key, {})[p.our_metric] = p
    return [PublishedRow(next(iter(by.values())), [by[m].value if m in by else "" for m in metrics], _row_notes(list(by.values())))
            for by in grouped.values()]


def value_note(p: Published) -> str:
    """The notes of one published value: its CSV ``notes`` and the mapping's note on its metric."""
    return "; ".join(n for n in (p.notes, p.metric_note) if n)


def _row_notes(values: list[Published]) -> str:
    """The notes of one row's values (:func:`value_note`): once when all share it, else "metric: note" for each with one."""
    notes = {value_note(p) for p in values}
    if len(notes) == 1:
        return notes.pop()
    return "; ".join(f"{p.metric}: {value_note(p)}" for p in values if value_note(p))


# --------------------------------------------------------------------------- plots


@dataclass
class Series:
    name: str
    color: str
    xs: list[float]
    ys: list[float]
    labels: list[str]


@dataclass(frozen=True)
class Level:
    """A horizontal segment: a per-bin mean drawn over the bin's interval."""

    x0: float
    x1: float
    y: float
    color: str
    label: str


@dataclass
class Plot:
    title: str
    x_label: str
    y_label: str
    series: list[Series]
    bands: list[tuple[float, float]] = field(default_factory=list)  # x intervals shaded
    band_label: str = ""
    levels: list[Level] = field(default_factory=list)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` evenly spaced ticks at a step of 1, 2, 2.5 or 5 times a power of ten, covering [lo, hi].

    The first and last ticks bound the axis. A single value gets an axis of width 1 around it.
    """
    if hi - lo <= 1e-12 * max(1.0, abs(lo), abs(hi)):
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 10) for k in range(first, last + 1)]


def tick_label(value: float, step: float) -> str:
    """``value`` with as many decimals as the tick ``step`` needs."""
    decimals = next(d for d in range(10) if abs(round(step, d) - step) <= 1e-9 * step)
    return f"{value:.{decimals}f}"


def binned_means(xs: list[float], ys: list[float]) -> list[tuple[float, float]]:
    """Mean (x, y) per distinct x when x takes few values, else per equal-width bin of x: one bin per
    8 points, from 3 to 12 bins."""
    groups: dict[float, list[tuple[float, float]]] = defaultdict(list)
    lo, hi = min(xs), max(xs)
    bins = max(3, min(12, len(xs) // 8))
    few = len(set(xs)) <= bins
    for x, y in zip(xs, ys):
        groups[x if few else min(bins - 1, int((x - lo) / (hi - lo) * bins))].append((x, y))
    return [(sum(x for x, _ in g) / len(g), sum(y for _, y in g) / len(g)) for _, g in sorted(groups.items())]


def scatter(result: Result, metric: str, axis: str, x_label: str) -> Plot:
    """Per-sample ``metric`` against a sample attribute ``axis`` of :class:`Point`, one series per pipeline."""
    series = []
    for i, pipe in enumerate(result.pipelines):
        pts = [p for p in result.points if p.pipeline == pipe and p.metric == metric]
        if pts:
            xs = [float(getattr(p, axis)) for p in pts]
            series.append(Series(pipe, PALETTE[i % len(PALETTE)], xs, [p.value for p in pts], [p.sample for p in pts]))
    arrow = "↑" if _column(result, metric).higher_is_better else "↓"
    return Plot(f"{metric} against {x_label}", x_label, f"{metric} {arrow}", series)


def suite_plots(result: Result) -> list[Plot]:
    """psnr (else the main metric) against the source-target angle; a pose metric (else the main metric)
    against the target camera distance, the first radius bin shaded and each bin's mean drawn over its
    intervals; each consistency metric against trajectory length. The main metric is the primary one,
    or the suite's first with per-sample values. A plot needs per-sample values, and the angle and
    distance plots an x that varies (the distance plot also shows when radius bins are set)."""
    scored = [m for m in result.metrics if any(p.metric == m for p in result.points)]
    if not scored:
        return []
    primary = result.summary.get("primary_metric")
    main = primary if primary in scored else scored[0]
    plots = []
    if _varies([p.angle_deg for p in result.points]):
        plots.append(scatter(result, "psnr" if "psnr" in scored else main, "angle_deg", "angle between source and target camera (°)"))
    bins = result.config.get("radius_bins") or {}
    radius_metric = next((m for m in scored if metric_family(m) == "pose"), main)
    if bins or _varies([p.radius for p in result.points]):
        plot = scatter(result, radius_metric, "radius", "target camera distance from the origin")
        if bins:
            first = next(iter(bins))
            plot.bands, plot.band_label = [(float(lo), float(hi)) for lo, hi in bins[first]], f"radius bin '{first}'"
            plot.levels = _bin_levels(result, radius_metric, bins)
        plots.append(plot)
    plots += [scatter(result, m, "n_targets", "trajectory length (targets)") for m in scored if metric_family(m) == "consistency"]
    return plots


def _varies(values: list[float]) -> bool:
    return bool(values) and max(values) - min(values) > 1e-6


def _bin_levels(result: Result, metric: str, bins: dict) -> list[Level]:
    """Each pipeline's mean per radius bin (``by_radius`` of the summary) over the bin's intervals."""
    levels = []
    for i, pipe in enumerate(result.pipelines):
        for name, entry in result.entry(pipe, metric).get("by_radius", {}).items():
            if entry.get("mean") is not None and name in bins:
                label = f"{pipe}, bin '{name}': mean {entry['mean']:.4g} (n = {entry.get('n')})"
                levels += [Level(float(lo), float(hi), entry["mean"], PALETTE[i % len(PALETTE)], label) for lo, hi in bins[name]]
    return levels


WIDTH, HEIGHT = 540, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 46


def plot_view(plot: Plot) -> dict:
    """Pixel geometry of a plot for ``leaderboard/macros.html.j2`` (SVG user units, y down)."""
    xs = [x for s in plot.series for x in s.xs] + [x for b in plot.bands for x in b] + [x for lv in plot.levels for x in (lv.x0, lv.x1)]
    ys = [y for s in plot.series for y in s.ys] + [lv.y for lv in plot.levels]
    xt, yt = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))

    def sx(x: float) -> float:
        return round(LEFT + (x - xt[0]) / (xt[-1] - xt[0]) * (WIDTH - LEFT - RIGHT), 2)

    def sy(y: float) -> float:
        return round(HEIGHT - BOTTOM - (y - yt[0]) / (yt[-1] - yt[0]) * (HEIGHT - TOP - BOTTOM), 2)

    series = []
    for s in plot.series:
        stride = math.ceil(len(s.xs) / MAX_POINTS)
        shown = list(range(0, len(s.xs), stride))
        points = [(sx(s.xs[i]), sy(s.ys[i]), f"{s.name} · {s.labels[i]}: ({s.xs[i]:.4g}, {s.ys[i]:.4g})") for i in shown]
        path = " ".join(f"{'M' if j == 0 else 'L'}{sx(x)},{sy(y)}" for j, (x, y) in enumerate(binned_means(s.xs, s.ys)))
        note = f"every {stride}th of {len(s.xs)} samples drawn" if stride > 1 else f"{len(s.xs)} samples"
        series.append({"name": s.name, "color": s.color, "points": points, "path": path, "note": note})
    return {
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "top": TOP, "bottom": HEIGHT - BOTTOM,
        "x_ticks": [(sx(t), tick_label(t, xt[1] - xt[0])) for t in xt],
        "y_ticks": [(sy(t), tick_label(t, yt[1] - yt[0])) for t in yt],
        "bands": [(sx(lo), sx(hi) - sx(lo)) for lo, hi in plot.bands],
        "levels": [(sx(lv.x0), sx(lv.x1), sy(lv.y), lv.color, lv.label) for lv in plot.levels],
        "series": series,
    }


# --------------------------------------------------------------------------- pages


def slug(name: str) -> str:
    """A file-name-safe id for a suite or pipeline name: the name itself when it is made of letters,
    digits, '_' and '-', else those characters plus a hash of the name (so distinct names stay distinct)."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:60]
    return safe if safe == name and name else f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


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
    (site / MARKER).write_text("built by nvsbench (bench/leaderboard.py); replaced whole by the next build\n")
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
