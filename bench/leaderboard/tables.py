"""The leaderboard's tables: one per metric family, cells "mean ± half-width of the 95 % CI (n)", published rows apart."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from bench.errors import ConfigError
from bench.leaderboard.published import Published, not_comparable, protocol_notes
from bench.leaderboard.results import Result
from bench.metrics.base import MEAN_DRAW_SUFFIX

FAMILY_ORDER = ("image", "depth", "pose", "consistency", "segmentation", "distribution", "cost", "other")


SIGNIFICANCE = 0.05


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
        return registry("metrics").get(name.removesuffix(MEAN_DRAW_SUFFIX)).family
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
        columns = [metric_column(result, m) for m in families[family]]
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


def metric_column(result: Result, metric: str) -> Column:
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
