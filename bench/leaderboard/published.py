"""Published results (``leaderboard/published_results.csv``) matched to suites by ``leaderboard/published_suites.yaml``,
and whether a run's data is comparable with them (:func:`not_comparable`): decided from the data the run recorded."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from bench.config import build, load_yaml
from bench.errors import ConfigError
from bench.leaderboard.results import Result
from bench.registry import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "leaderboard"


PUBLISHED_CSV = TEMPLATES / "published_results.csv"


PUBLISHED_SUITES = TEMPLATES / "published_suites.yaml"


CSV_COLUMNS = ("dataset", "split_protocol", "method", "metric", "value", "higher_is_better",
               "source_paper", "source_arxiv_id", "table", "notes")


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
    compared with what a run records of its data (``meta.data``, :func:`bench.runner.summary.data_facts`)."""

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
