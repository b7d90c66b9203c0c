"""``nvsbench data check``: verify a dataset against its suite before spending compute on it.

Every view the protocol uses is loaded and checked (:func:`bench.data.base.check_view`), and
every sample's sources and targets must share one size. Target views whose ground truth a metric
cannot score (no valid depth pixel, an empty mask) are reported: the run counts them as not
applicable to those metrics, not as failures of a pipeline. All problems are collected, so one
check lists every unusable file of a large dataset; a run records the samples that use them as
failures instead of stopping.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tqdm import tqdm

from bench.data.base import check_same_size, check_view
from bench.errors import ConfigError
from bench.metrics.evaluate import GT_FIELD, ground_truth_gaps
from bench.suite import Suite
from bench.types import View

SHOWN_PROBLEMS = 5  # problems quoted in the error; the count covers all of them


@dataclass
class DatasetReport:
    """What a check found: scenes, the views the protocol uses, image sizes, optional fields, samples."""

    root: str
    scenes: int = 0
    views_per_scene: dict[str, int] = field(default_factory=dict)
    sizes: Counter = field(default_factory=Counter)
    fields: Counter = field(default_factory=Counter)
    samples: int = 0
    resized: list[str] = field(default_factory=list)  # the reader's resize notes (:meth:`bench.data.base.Reader.resize_notes`)
    gaps: dict[str, list[str]] = field(default_factory=dict)  # why -> "scene/view" of the target views with that ground-truth gap

    def lines(self) -> list[str]:
        counts = list(self.views_per_scene.values())
        sizes = ", ".join(f"{h}x{w} ({n})" for (h, w), n in self.sizes.most_common())
        extra = ", ".join(f"{name} ({n})" for name, n in sorted(self.fields.items())) or "none"
        return [
            f"dataset root: {self.root}",
            f"scenes: {self.scenes}, of which the protocol uses {len(counts)}",
            f"protocol samples: {self.samples}; views they use: {sum(counts)} (per scene {min(counts)}..{max(counts)})",
            f"image sizes (H x W): {sizes}",
            f"optional fields read: {extra}",
            *(f"resized on load: {note}" for note in self.resized),
            *(f"{len(views)} target views {why}: not applicable to the metrics that need it, e.g. {', '.join(views[:3])}"
              for why, views in self.gaps.items()),
            "every used file present and decodable; every rotation orthonormal; every K finite with positive focal lengths; "
            "the views of each sample share one size",
        ]


def problems_error(problems: list[str], checked: str) -> ConfigError:
    """One one-line ConfigError for all ``problems`` found in what ``checked`` describes: the count and the first few."""
    if len(problems) == 1:
        return ConfigError(problems[0])
    shown = " | ".join(problems[:SHOWN_PROBLEMS])
    more = f" | ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    return ConfigError(f"{len(problems)} problems in {checked} (a run records the samples they affect as failures): {shown}{more}")


def view_gaps(suite: Suite, view: View) -> list[str]:
    """Why the suite's metrics cannot score a target ``view``'s ground truth (:func:`bench.metrics.evaluate.ground_truth_gaps`)."""
    out = []
    for metric in suite.metrics.values():
        if metric.needs_mask and metric.mask_kind == "visible":  # a property of the sample (its sources), not of one view
            continue
        field_ = GT_FIELD.get(metric.family)
        target = getattr(view, field_, None) if field_ else None
        if target is None:
            continue
        gap, why = ground_truth_gaps(metric, target[None], view.mask[None] if view.mask is not None else None, suite.config.metric_options)
        if bool(gap[0]) and why not in out:
            out.append(why)
    return out


def check_dataset(suite: Suite, progress: bool = True) -> DatasetReport:
    """Load and check every view the suite's protocol uses (a partial download is fine if it covers them).

    Raises:
        ConfigError: listing every view that cannot be read or fails :func:`check_view`, and every
            sample whose sources (or targets) differ in size.
    """
    reader = suite.reader
    report = DatasetReport(str(reader.root), scenes=len(reader.scenes()))
    specs = list(suite.protocol.samples(reader))
    report.samples = len(specs)
    used: dict[str, dict[str, None]] = {}  # scene -> ordered views
    targets: dict[str, set[str]] = {}
    for spec in specs:
        used.setdefault(spec.scene, {}).update(dict.fromkeys(spec.source_views + spec.target_views))
        targets.setdefault(spec.scene, set()).update(spec.target_views)
    if not used:
        raise ConfigError(f"the protocol finds no samples in {reader.root}")
    problems: list[str] = []
    sizes: dict[tuple[str, str], tuple[int, int]] = {}
    with tqdm(total=sum(map(len, used.values())), desc="checking views", unit="view", disable=not progress) as bar:
        for scene, views in used.items():
            report.views_per_scene[scene] = len(views)
            for view_id in views:
                try:
                    view = reader.load_view(scene, view_id)
                    check_view(view, f"{reader.root}: scene '{scene}' view '{view_id}'")
                except (ConfigError, OSError) as exc:
                    problems.append(str(exc))
                else:
                    if view_id in targets[scene]:
                        for why in view_gaps(suite, view):
                            report.gaps.setdefault(why, []).append(f"{scene}/{view_id}")
                    sizes[scene, view_id] = view.size
                    report.sizes[view.size] += 1
                    report.fields.update(name for name in ("depth", "mask", "seg") if getattr(view, name) is not None)
                bar.update(1)
    for spec in specs:
        for what, ids in (("source", spec.source_views), ("target", spec.target_views)):
            try:
                check_same_size({v: sizes[spec.scene, v] for v in ids if (spec.scene, v) in sizes}, what, f"sample {spec.id}")
            except ConfigError as exc:
                problems.append(str(exc))
    report.resized = reader.resize_notes()
    if problems:
        raise problems_error(problems, f"the {sum(report.views_per_scene.values())} views and {len(specs)} samples the protocol uses")
    return report
