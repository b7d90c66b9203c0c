"""The leaderboard's SVG plots: per-sample scores against the source-target angle, camera distance and trajectory length."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from bench.leaderboard.results import Result
from bench.leaderboard.tables import metric_column, metric_family

MAX_POINTS = 1500  # points drawn per series of a scatter plot (every k-th sample beyond)


#: Okabe & Ito (2008), "Color Universal Design": distinguishable with colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999")


WIDTH, HEIGHT = 540, 320


LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 46


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
    arrow = "↑" if metric_column(result, metric).higher_is_better else "↓"
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
