"""The leaderboard builder: cells, sorting, published rows, escaping, plots, pages, atomic output,
and an end-to-end build from a real run of the tiny suite."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from bench.config import load_yaml
from bench.errors import ConfigError
from bench.leaderboard.pages import MARKER, build_site
from bench.leaderboard.plots import HEIGHT, LEFT, RIGHT, WIDTH, Plot, Series, nice_ticks, plot_view, tick_label
from bench.leaderboard.published import CSV_COLUMNS, PUBLISHED_CSV, PUBLISHED_SUITES, Published, Split, load_published
from bench.leaderboard.results import slug
from bench.leaderboard.tables import Cell, format_cell, published_rows
from bench.registry import registry, yaml_names
from bench.visuals import visual_dir
from tests.conftest import PROJECT, write_suite

EVIL = "<img src=x onerror=alert(1)>"


class Tables(HTMLParser):
    """Cells of the tables that have an id: ``tables[id][section] = [[(text, attrs), ...] per row]``,
    ``section`` being a tbody's class or "thead"."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: dict[str, dict[str, list]] = {}
        self.table = self.section = self.row = self.cell = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "id" in a:
            self.table = self.tables.setdefault(a["id"], {})
        elif self.table is None:
            return
        elif tag in ("thead", "tbody"):
            self.section = self.table.setdefault(a.get("class", tag), [])
        elif tag == "tr":
            self.row = []
            self.section.append(self.row)
        elif tag in ("td", "th"):
            self.cell = ["", a]
            self.row.append(self.cell)

    def handle_endtag(self, tag):
        if tag == "table":
            self.table = None
        elif tag in ("td", "th"):
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[0] += data

    def rows(self, table: str, section: str) -> list[list[tuple[str, dict]]]:
        return [[(" ".join(text.split()), attrs) for text, attrs in row] for row in self.tables[table][section]]


# --------------------------------------------------------------------------- a hand-made results folder

PIPES = ("slow", "fast", EVIL)
N = 10


def entry(mean, lo, hi, best=False, p=None, hib=True, n=N, **extra) -> dict:
    return {"mean": mean, "ci95": [lo, hi], "n": n, "higher_is_better": hib, "best": best, "p_vs_best": p, **extra}


def make_results(folder: Path, suite: str = "srn_cars") -> Path:
    """A results folder as the runner writes it: summary.json, results.sqlite (scores + sample geometry), visuals."""
    from bench.metrics.evaluate import Score
    from bench.store import Store

    bins = {"in_range": [[2.0, 4.0]], "out_of_range": [[1.0, 2.0], [4.0, 6.0]]}
    by_radius = {"in_range": {"mean": 21.0, "ci95": [20.0, 22.0], "n": 4}, "out_of_range": {"mean": 19.0, "ci95": [18.0, 20.0], "n": 6}}
    unavailable = {"unavailable": "missing weights: /w/vgg16-397923af.pth", "higher_is_better": False}
    no_fid = {"unavailable": "missing weights: /w/inception.pth", "higher_is_better": False}
    results = {
        "slow": {"psnr": entry(20.0, 19.5, 20.5, p=0.01, by_radius=by_radius), "l1": entry(0.05, 0.04, 0.06, best=True, hib=False),
                 "abs_rel": entry(0.2, 0.1, 0.3, best=True, hib=False), "lpips_vgg": unavailable, "tsed": entry(0.9, 0.8, 1.0, best=True)},
        "fast": {"psnr": entry(25.0, 24.0, 26.0, best=True), "l1": entry(0.10, 0.09, 0.11, p=0.001, hib=False),
                 "abs_rel": entry(0.3, 0.2, 0.4, p=0.2, hib=False), "lpips_vgg": unavailable, "tsed": entry(0.5, 0.4, 0.6, p=0.03)},
        EVIL: {"psnr": entry(24.9, 23.9, 25.9, p=0.6), "l1": {"mean": None, "ci95": None, "n": 0, "higher_is_better": False},
               "abs_rel": {"mean": None, "ci95": None, "n": 0, "higher_is_better": False}, "lpips_vgg": unavailable,
               "tsed": {"mean": None, "ci95": None, "n": 0, "higher_is_better": True}},
    }
    for metrics in results.values():
        metrics["fid"] = no_fid
    run_keys = {p: f"key{i}" for i, p in enumerate(PIPES)}
    summary = {
        "suite": suite, "n_samples": N, "primary_metric": "psnr", "aggregate": "sample", "results": results,
        "failures": {"slow": [], "fast": [],  # a record per sample and failing metric: 3 samples, 6 records
                     EVIL: [{"sample": f"s{i}", "error": f"{m}: ValueError: <b>bad {i}</b>"} for i in range(3) for m in ("psnr", "tsed")]},
        "meta": {
            "git_commit": "abc123-dirty", "config_hashes": {"suite": "suitehash", **{p: f"hash-{i}" for i, p in enumerate(PIPES)}},
            "run_keys": run_keys, "data_key": "data1", "seed": 7, "device": "cpu", "limit": None, "wall_time_s": 1.5,
            "data": {"generated": None, "scenes": 704, "samples": 176000, "image_size": [128, 128]},  # the published cars_test split
            "finished_at": "2026-01-02T03:04:05+0000", "packages": {"torch": "2.12.1"}, "command": ["nvsbench", "run", "x"],
            "suite_config": {"name": suite, "description": "<script>alert('d')</script> toy", "dataset": {"reader": "srn"},
                             "protocol": {"kind": "source_targets", "sources": [0]}, "metrics": ["psnr", "l1", "abs_rel", "lpips_vgg", "tsed", "fid"],
                             "radius_bins": bins},
        },
    }
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    store = Store(folder)
    store.write_samples("data1", [(f"s{i}", "scene", 1, 1 + i % 3, 10.0 * i, 1.0 + 0.5 * i) for i in range(N)])
    for k, pipe in enumerate(PIPES):
        scores = [Score(f"s{i}", "scene", "psnr", 20.0 + k + 0.1 * i) for i in range(N)]
        scores += [Score(f"s{i}", "scene", "tsed", 0.5 + 0.01 * i) for i in range(N) if pipe != EVIL]
        store.write(run_keys[pipe], pipe, scores, [])
    store.write_samples("other-data", [("s0", "scene", 1, 1, 99.0, 99.0)])  # another suite's geometry: ignored
    store.close()
    from PIL import Image

    for pipe in ("slow", EVIL):
        visual_dir(folder, pipe, run_keys[pipe]).mkdir(parents=True)
        Image.new("RGB", (4 * 32, 32), (200, 10, 10)).save(visual_dir(folder, pipe, run_keys[pipe]) / "s0.png")
    return folder


def published_csv(path: Path) -> Path:
    """Two SRN-cars rows (shown on the srn_cars page), one of them with markup and one with a note, and one unmapped row."""
    rows = [
        ["SRN cars", "1v view64 128px", "Paper<b>Net</b>", "PSNR", "23.17", "1", "Some CVPR23", "2304.06714", "Tab.2", ""],
        ["SRN cars", "1v view64 128px", "Paper<b>Net</b>", "LPIPS", "0.146", "0", "Some CVPR23", "2304.06714", "Tab.2", "LPIPS via X"],
        ["Elsewhere", "other protocol", "Unmatched", "PSNR", "30.0", "1", "Other 2025", "", "Tab.9", ""],
    ]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([list(CSV_COLUMNS), *rows])
    return path


@pytest.fixture
def site(tmp_path) -> Path:
    index = build_site([make_results(tmp_path / "res")], tmp_path / "site", published_csv(tmp_path / "pub.csv"))
    return index.parent


def page(site: Path, name: str) -> str:
    return (site / name).read_text()


# --------------------------------------------------------------------------- formatting


def test_cell_is_mean_plus_minus_half_ci_with_n():
    # half-width (14.3607 - 13.2127) / 2 = 0.574 -> two significant digits "0.57", mean to 2 decimals
    c = format_cell(entry(13.7782, 13.2127, 14.3607, best=True, n=90))
    assert c.text == "13.78 ± 0.57 (90)" and c.best and not c.significant and c.sort == "13.7782"
    assert c.title == "95 % CI [13.213, 14.361]; best row"
    # half-width 0.01875 -> "0.019", mean to 3 decimals; p < 0.05 marks the row
    c = format_cell(entry(0.6728, 0.6543, 0.6918, p=0.012, n=90))
    assert c.text == "0.673 ± 0.019 (90)" and c.significant and "p = 0.012" in c.title
    assert not format_cell(entry(0.6728, 0.6543, 0.6918, p=0.05)).significant  # p < 0.05, not <=
    assert format_cell(entry(1234.4, 1200.0, 1270.0)).text == "1234 ± 35 (10)"  # half-width 35: no decimals
    assert format_cell({"mean": 12.3456, "ci95": None, "n": 4, "higher_is_better": True}).text == "12.35 (4)"
    assert format_cell(entry(0.5, 0.5, 0.5)).text == "0.5 ± 0 (10)"
    assert format_cell({"mean": None, "ci95": None, "n": 0}) == Cell("–", title="no sample was scored")
    c = format_cell({"unavailable": "missing weights: /w/a.pth", "higher_is_better": False})
    assert c.text == "n/a" and c.unavailable == "missing weights: /w/a.pth" and c.sort == ""
    c = format_cell(entry(0.5, 0.4, 0.6, details={"mean_over": "the 3 of 21 classes present"}))
    assert c.over == "the 3 of 21 classes present" and c.title.endswith("; mean over the 3 of 21 classes present")


def test_nice_ticks_cover_the_range_at_round_steps():
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(11.3, 14.4) == [11.0, 12.0, 13.0, 14.0, 15.0]  # raw step 0.62 -> 1
    assert nice_ticks(0.0, 1.1) == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]  # raw step 0.22 -> 0.25
    assert nice_ticks(3.0, 3.0) == [2.4, 2.6, 2.8, 3.0, 3.2, 3.4, 3.6]  # one value: [2.5, 3.5] around it, step 0.2
    assert [tick_label(t, 0.25) for t in (0.0, 0.25, 1.5)] == ["0.00", "0.25", "1.50"]
    assert tick_label(40.0, 20.0) == "40"


def test_plot_geometry_maps_data_and_band_to_pixels():
    plot = Plot("t", "x", "y", [Series("a", "#000", [0.0, 10.0], [0.0, 1.0], ["s0", "s1"])], bands=[(2.5, 5.0)])
    v = plot_view(plot)
    inner = WIDTH - LEFT - RIGHT
    assert [label for _, label in v["x_ticks"]] == ["0", "2", "4", "6", "8", "10"]
    assert v["bands"] == [(round(LEFT + 0.25 * inner, 2), round(0.25 * inner, 2))]
    (x0, y0, _), (x1, y1, _) = v["series"][0]["points"]
    assert (x0, x1) == (LEFT, WIDTH - RIGHT) and (y0, y1) == (v["bottom"], v["top"]) and v["bottom"] < HEIGHT


def test_importing_the_builder_does_not_import_torch():
    code = "import sys, bench.leaderboard.pages; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True).returncode == 0


def test_slugs_are_safe_file_names_and_distinct():
    assert slug("quickstart") == "quickstart"
    assert re.fullmatch(r"_img_src_x_onerror_alert_1_-[0-9a-f]{8}", slug(EVIL))
    assert slug("a b") != slug("a_b") and slug("a_b") == "a_b"


# --------------------------------------------------------------------------- pages


def test_tables_per_family_sorted_by_primary_metric_best_first(site):
    t = Tables(page(site, "suite-srn_cars.html"))
    assert {"t-image", "t-depth", "t-consistency"} <= set(t.tables)
    names = [row[0][0] for row in t.rows("t-image", "measured")]
    assert names == ["fast", EVIL, "slow"]  # psnr 25.0, 24.9, 20.0; higher is better
    head = {attrs["data-key"]: attrs for _, attrs in t.rows("t-image", "thead")[0]}
    assert head["psnr"]["aria-sort"] == "descending" and head["l1"]["data-first"] == "asc"
    # the depth table has no psnr: sorted by its first metric, lower first, no value last
    assert [row[0][0] for row in t.rows("t-depth", "measured")] == ["slow", "fast", EVIL]


def test_cells_carry_summary_values_markers_and_a_legend(site):
    html = page(site, "suite-srn_cars.html")
    cells = {row[0][0]: row for row in Tables(html).rows("t-image", "measured")}
    psnr = {name: row[1] for name, row in cells.items()}
    assert psnr["fast"][0] == "25.0 ± 1.0 (10) ★" and psnr["fast"][1]["data-sort"] == "25.0"
    assert psnr["slow"][0] == "20.00 ± 0.50 (10) †"  # p = 0.01 against the best
    assert psnr[EVIL][0] == "24.9 ± 1.0 (10)"  # p = 0.6: no mark
    assert cells[EVIL][2][0] == "–" and cells[EVIL][2][1]["data-sort"] == ""  # l1 without samples
    assert cells[EVIL][-1][0] == "3" and cells["slow"][-1][0] == "0"  # failed samples, not the 6 failure records
    assert "</a>: 3 failed samples</li>" in html
    assert "differs from the best row" in html and "Wilcoxon" in html


def test_unavailable_metric_shows_its_reason(site):
    html = page(site, "suite-srn_cars.html")
    t = Tables(html)
    head = {attrs["data-key"]: attrs for _, attrs in t.rows("t-image", "thead")[0]}
    assert head["lpips_vgg"]["title"] == "unavailable: missing weights: /w/vgg16-397923af.pth"
    assert all(row[3][0] == "n/a" for row in t.rows("t-image", "measured"))
    assert "<strong>lpips_vgg</strong>: missing weights: /w/vgg16-397923af.pth" in html
    # a family where nothing ran is sorted by pipeline name
    assert [row[0][0] for row in t.rows("t-distribution", "measured")] == sorted(PIPES)
    assert t.rows("t-distribution", "thead")[0][0][1]["aria-sort"] == "ascending"


def test_published_rows_are_apart_never_ranked_and_cited(site):
    html = page(site, "suite-srn_cars.html")
    t = Tables(html)
    assert all("PaperNet" not in row[0][0] for row in t.rows("t-image", "measured"))
    divider, row = t.rows("t-image", "published")
    assert "not measured by nvsbench, not ranked" in divider[0][0]
    assert row[0][0].startswith("Paper<b>Net</b> (SRN cars, 1v view64 128px)") and "Some CVPR23, arXiv:2304.06714, Tab.2" in row[0][0]
    assert [c[0] for c in row[1:5]] == ["23.17", "–", "0.146", ""]  # psnr, l1, lpips_vgg (= LPIPS), failures
    assert "LPIPS: LPIPS via X" in row[0][0]  # the CSV's notes of the row's values, by metric as they differ
    assert "not comparable" not in html  # a run without --limit on data of the published split's size
    assert 'href="https://arxiv.org/abs/2304.06714"' in html
    assert "Unmatched" not in html  # its protocol maps to no suite: only on the published page
    published = page(site, "published.html")
    assert "Unmatched" in published and "No nvsbench suite runs this protocol." in published
    assert '<a href="suite-srn_cars.html">srn_cars</a>' in published


def test_published_row_notes_are_shown_once_when_shared():
    row = dict(zip(CSV_COLUMNS, ["SRN cars", "1v", "M", "PSNR", "1", "1", "P", "", "Tab.1", "variant"]))
    psnr, lpips = Published(**row, our_metric="psnr"), Published(**{**row, "metric": "LPIPS", "value": "2"}, our_metric="lpips_vgg")
    (shared,) = published_rows([psnr, lpips], ["psnr", "lpips_vgg"])
    assert shared.values == ["1", "2"] and shared.notes == "variant"
    (one,) = published_rows([psnr, Published(**{**row, "metric": "LPIPS", "notes": ""}, our_metric="lpips_vgg")], ["psnr", "lpips_vgg"])
    assert one.notes == "PSNR: variant"


@pytest.mark.parametrize(("limit", "partial"), [(10, True), (50, False)])
def test_a_limited_run_shows_its_limit_and_root_and_marks_published_rows_not_comparable(tmp_path, limit, partial):
    """--limit 10 on 10 samples may have cut the set: flagged; --limit 50 found only 10: every sample was scored."""
    res = make_results(tmp_path / "res")
    summary = json.loads((res / "summary.json").read_text())
    summary["meta"]["limit"] = limit
    summary["meta"]["suite_config"]["dataset"]["root"] = "/data/srn_cars"
    (res / "summary.json").write_text(json.dumps(summary))
    site = build_site([res], tmp_path / "site", published_csv(tmp_path / "pub.csv")).parent
    html = page(site, "suite-srn_cars.html")
    data = re.search(r"<dt>data</dt><dd>(.*?)</dd>", html).group(1)
    assert data == "srn reader, root /data/srn_cars" + (", first 10 samples only" if partial else "")
    assert ("first 10 samples only" in page(site, "index.html")) == partial
    divider, row = Tables(html).rows("t-image", "published")
    assert ("not comparable: this run scored only the first 10 samples" in divider[0][0]) == partial
    assert (row[1][1].get("title") == "not comparable: this run scored only the first 10 samples") == partial
    assert ('<tr class="not-comparable">' in html) == partial


@pytest.mark.parametrize(("data", "reason"), [
    ({"generated": {"format": "srn"}, "scenes": 4, "samples": 176000, "image_size": [64, 64]},
     "the data is a generated stand-in (srn, 4 scenes, 64x64 px), not the published data"),
    ({"generated": None, "scenes": 704, "samples": 176000, "image_size": [64, 64]},
     "the data is not the published split: image size 64x64 px (published: 128x128 px)"),
    ({"generated": None, "scenes": 10, "samples": 2500, "image_size": [128, 128]},
     "the data is not the published split: scenes 10 (published: 704), samples 2500 (published: 176000)"),
    (None, "this run recorded nothing about its data"),
])
def test_a_full_run_on_other_data_than_the_published_split_is_labelled_not_comparable(tmp_path, data, reason):
    """Comparability comes from the data the run recorded (a stand-in's synth.json, counts, size), not the suite name."""
    res = make_results(tmp_path / "res")
    summary = json.loads((res / "summary.json").read_text())
    summary["meta"]["data"] = data
    (res / "summary.json").write_text(json.dumps(summary))
    site = build_site([res], tmp_path / "site", published_csv(tmp_path / "pub.csv")).parent
    html = page(site, "suite-srn_cars.html")
    divider, row = Tables(html).rows("t-image", "published")
    assert f"not comparable: {reason}" in divider[0][0]
    assert row[1][1]["title"].startswith(f"not comparable: {reason}")
    assert '<tr class="not-comparable">' in html
    assert f"not comparable: {reason}" in page(site, "index.html")


def test_a_metric_note_of_the_mapping_belongs_to_that_metric_of_its_rows_only(tmp_path):
    """published_suites.yaml's note on 3DiM's SSIM is shown with SSIM values, not under every row of the protocol."""
    rows = load_published(PUBLISHED_CSV, PUBLISHED_SUITES)
    cars = [r for r in rows if r.dataset == "SRN cars" and r.split_protocol == "1v view64 128px"]
    ssim = [r for r in cars if r.metric == "SSIM"]
    assert ssim and all("3DiM" in r.metric_note for r in ssim)
    assert all(r.metric_note == "" and "3DiM" not in r.mapping_note for r in cars if r.metric != "SSIM")
    table = {p.source.method: p.notes for p in published_rows(cars, ["psnr", "ssim", "lpips_vgg"])}
    assert "3DiM's is unspecified" in table["3DiM"]
    assert all("3DiM's is unspecified" not in notes for method, notes in table.items() if method != "3DiM"), table
    assert {r.split_for("srn_cars") for r in cars} == {Split(704, 176000, (128, 128))}


def test_text_from_configs_results_and_published_file_is_escaped(site):
    pages = {p.name: p.read_text() for p in site.glob("*.html")}
    for name, html in pages.items():
        assert "<img src=x" not in html and "<script>alert" not in html and "<b>" not in html, name
    suite = pages["suite-srn_cars.html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in suite and "&lt;script&gt;alert(&#39;d&#39;)&lt;/script&gt; toy" in suite
    assert "Paper&lt;b&gt;Net&lt;/b&gt;" in suite
    evil_page = next(n for n in pages if n.startswith("pipeline-srn_cars._img"))
    assert "psnr: ValueError: &lt;b&gt;bad 0&lt;/b&gt;" in pages[evil_page]
    assert re.fullmatch(r"pipeline-srn_cars\._img_src_x_onerror_alert_1_-[0-9a-f]{8}\.html", evil_page)


def test_pages_are_self_contained_with_a_strict_content_security_policy(site):
    for p in site.glob("*.html"):
        html = p.read_text()
        csp = unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1))
        assert csp.startswith("default-src 'none'; img-src 'self'; style-src 'sha256-")
        assert not re.search(r'(src|href)="(https?:)?//', html.replace('href="https://arxiv.org/abs/', ""))  # nothing remote but citations
        assert '<link rel="stylesheet"' not in html and "<script src" not in html


def test_plots_are_inline_svg_with_samples_band_and_bin_means(site):
    html = page(site, "suite-srn_cars.html")
    figures = re.findall(r'<figure class="plot".*?</figure>', html, re.S)
    titles = [re.search(r"<figcaption>(.*?)</figcaption>", f).group(1) for f in figures]
    assert titles == ["psnr against angle between source and target camera (°)", "psnr against target camera distance from the origin",
                      "tsed against trajectory length (targets)"]
    angle, radius, tsed = (re.search(r"<svg xmlns.*?</svg>", f, re.S).group(0) for f in figures)
    assert angle.count("<circle cx") == 3 * N  # every sample of every pipeline, not the other suite's
    assert 'class="band"' in radius and "radius bin &#39;in_range&#39;" in radius
    assert radius.count('class="level"') == 3  # slow's bin means: in_range (1 interval) + out_of_range (2); others have none
    assert tsed.count("<circle cx") == 2 * N  # the pipeline without tsed values has no series


def test_pipeline_page_has_metadata_images_and_failures(site):
    html = page(site, "pipeline-srn_cars.slow.html")
    for text in ("abc123-dirty", "hash-0", "suitehash", "key0", "<code>7</code>", "<code>cpu</code>", "2026-01-02T03:04:05+0000"):
        assert text in html
    assert (site / "img" / "srn_cars" / "slow" / "s0.png").is_file()
    assert 'src="img/srn_cars/slow/s0.png" width="512" height="128"' in html  # 128 px wide grid shown at 4x
    assert "Failures (0)" in html
    evil = next(site.glob("pipeline-srn_cars._img*.html")).read_text()
    assert "Failures (6)" in evil and "tsed: ValueError: &lt;b&gt;bad 2" in evil  # every record listed
    assert len(list((site / "img" / "srn_cars").iterdir())) == 2  # slow and the escaped name, one folder each


def test_index_lists_suites_with_protocol_samples_and_pipelines(site):
    html = page(site, "index.html")
    assert '<a href="suite-srn_cars.html">srn_cars</a>' in html
    assert "source_targets (sources=[0]); radius bins in_range [[2.0, 4.0]], out_of_range [[1.0, 2.0], [4.0, 6.0]]" in html
    assert '<td class="num">10</td>' in html and '<td class="num">3</td>' in html  # samples, pipelines


def test_build_replaces_only_a_site_and_leaves_no_temporary_folder(tmp_path):
    res = make_results(tmp_path / "res")
    out = tmp_path / "site"
    build_site([res], out)
    (out / "stale.html").write_text("old")
    build_site([res, res], out)  # the same suite twice: two pages
    assert not (out / "stale.html").exists() and (out / "suite-srn_cars-2.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res", "site"]
    with pytest.raises(ConfigError, match="is not a leaderboard site"):
        build_site([res], res)
    assert (res / "summary.json").is_file() and not (res / MARKER).exists()
    with pytest.raises(ConfigError, match=r"no summary.json"):
        build_site([tmp_path / "nothing"], tmp_path / "site2")
    assert not (tmp_path / "site2").exists()


def set_psnr(folder: Path, pipe: str, mean: float) -> None:
    """Give one pipeline's psnr in a results folder's summary a recognisable mean."""
    summary = json.loads((folder / "summary.json").read_text())
    summary["results"][pipe]["psnr"]["mean"] = mean
    (folder / "summary.json").write_text(json.dumps(summary))


def test_a_suite_named_like_a_renamed_page_keeps_every_result(tmp_path):
    """Folders of suites a, a and a-2: the second "a" must not take (and lose to) the page of suite "a-2"."""
    folders = [make_results(tmp_path / name, suite) for name, suite in (("r1", "a"), ("r2", "a"), ("r3", "a-2"))]
    for k, folder in enumerate(folders):
        set_psnr(folder, "fast", 30.0 + k)
    site = build_site(folders, tmp_path / "site").parent
    links = re.findall(r'<a href="(suite-[^"]+)">([^<]+)</a>', page(site, "index.html"))
    assert [name for _, name in links] == ["a", "a", "a-2"] and len({href for href, _ in links}) == 3
    assert links[2][0] == "suite-a-2.html"  # a suite keeps its own name; the second "a" gets another
    for k, (href, _) in enumerate(links):
        psnr = {row[0][0]: row[1] for row in Tables(page(site, href)).rows("t-image", "measured")}
        assert psnr["fast"][1]["data-sort"] == str(30.0 + k)
        assert page(site, href).count(f'href="pipeline-{href[len("suite-"):-len(".html")]}.fast.html"') >= 1


def test_pipeline_page_shows_the_images_of_the_summary_run_key(tmp_path):
    """Grids of another config (run key) in the same folder -- left by a run of other settings before a
    resumed run -- are not shown; only those of the run key in summary.json are."""
    from PIL import Image

    res = make_results(tmp_path / "res")
    other = visual_dir(res, "slow", "otherkey")
    other.mkdir(parents=True)
    Image.new("RGB", (64, 16), (0, 0, 255)).save(other / "s0.png")
    Image.new("RGB", (64, 16), (0, 0, 255)).save(other / "s1.png")
    site = build_site([res], tmp_path / "site").parent
    shown = site / "img" / "srn_cars" / "slow"
    assert [p.name for p in shown.iterdir()] == ["s0.png"]
    assert Image.open(shown / "s0.png").getpixel((0, 0)) == (200, 10, 10)  # the grid of key0, not the blue one
    assert "img/srn_cars/slow/s1.png" not in page(site, "pipeline-srn_cars.slow.html")
    assert not (site / "img" / "srn_cars" / "fast").exists()  # no grids under fast's run key


def test_a_rebuild_swaps_the_site_in_one_step(tmp_path, monkeypatch):
    """The old site is exchanged for the new one atomically (the folder ``out`` never goes missing), and
    without renameat2 the two-rename fallback gives the same result."""
    from bench.leaderboard import pages as leaderboard

    assert leaderboard.exchange_paths(a := tmp_path / "a", b := tmp_path / "b") is False  # neither exists: nothing happens
    a.mkdir(), b.mkdir(), (a / "x").touch()
    assert leaderboard.exchange_paths(a, b) and (b / "x").exists() and not (a / "x").exists()
    res, out = make_results(tmp_path / "res"), tmp_path / "site"
    build_site([res], out)
    first = out.stat().st_ino
    renames = []
    real_replace = leaderboard.os.replace
    monkeypatch.setattr(leaderboard.os, "replace", lambda src, dst: renames.append(dst) or real_replace(src, dst))
    build_site([res, res], out)
    assert renames == [] and out.stat().st_ino != first and (out / "suite-srn_cars-2.html").is_file()
    monkeypatch.setattr(leaderboard, "exchange_paths", lambda a, b: False)
    build_site([res], out)
    assert renames[-1] == out and not (out / "suite-srn_cars-2.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "res", "site"]


def test_published_file_needs_its_source_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("dataset,method,value\nx,y,1\n")
    with pytest.raises(ConfigError, match=r"bad.csv: .*missing split_protocol, metric"):
        load_published(bad)


def test_suite_mapping_is_read_like_a_config(tmp_path):
    """The mapping goes through the configs' loader: aliases are refused at file:line, before they expand."""
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("metrics: &m {PSNR: psnr}\nsuites: []\nagain: *m\n")
    with pytest.raises(ConfigError, match=r"mapping.yaml:3"):
        load_published(PUBLISHED_CSV, mapping)


def test_shipped_published_results_and_their_suite_mapping():
    """The copy keeps the source columns; every mapping entry matches rows, a shipped suite and real metrics;
    rows of other protocols than a suite's stay off its page."""
    with PUBLISHED_CSV.open(newline="") as f:
        assert tuple(next(csv.reader(f))) == CSV_COLUMNS
    rows = load_published(PUBLISHED_CSV)
    mapping = yaml.safe_load(PUBLISHED_SUITES.read_text())
    suites = yaml_names("suites")
    for m in mapping["suites"]:
        assert m["suite"] in suites and any((r.dataset, r.split_protocol) == (m["dataset"], m["split_protocol"]) for r in rows), m
    assert set(mapping["metrics"].values()) <= set(registry("metrics").names())
    srn = [r for r in rows if "srn_cars" in r.suites]
    assert {r.method for r in srn} >= {"pixelNeRF", "SSDNeRF", "Splatter Image"}
    assert {r.suites for r in rows if r.dataset.startswith("RealEstate10K")} == {()}  # other protocols than the suite's
    # the seed's training-set per-batch IoU, exact +-40 degree pairs of Hou et al.'s split, pose errors on a view-synthesis suite
    assert {s for r in rows for s in r.suites} == {"srn_cars", "srn_chairs"}
    assert {r.suites for r in rows if r.dataset.startswith(("PASCAL VOC", "ShapeNet", "NeRF-rendered"))} == {()}
    metrics = registry("metrics")
    for r in rows:
        if r.suites:  # a row on a suite page reports a metric of ours, in the same direction
            assert r.our_metric and metrics.get(r.our_metric).higher_is_better == (r.higher_is_better == "1"), r
    ssim_rows = [r for r in rows if r.suites and r.our_metric == "ssim"]
    assert {r.method for r in ssim_rows} == {"3DiM"} and all("ssim_uniform7" in r.metric_note for r in ssim_rows)
    for suite in ("srn_cars", "srn_chairs", "srn_cars_2view"):
        assert {"ssim", "ssim_uniform7"} <= set(load_yaml(PROJECT / "suites" / f"{suite}.yaml").data["metrics"]), suite


# --------------------------------------------------------------------------- end to end


def test_site_from_a_real_run(cli, tmp_path, objects_root):
    """Run the tiny suite (radius bins, a pipeline with a hostile name), build the site, read it back."""
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"name: '{EVIL}'\nstages:\n  - stage: copy_source\n")
    suite = write_suite(tmp_path, objects_root, text="radius_bins: {in_range: [[1.3, 1.4]], out_of_range: [[1.4, 1.6]]}\n",
                        pipelines="pipelines: [identity, oracle_reproject]")
    out = tmp_path / "res"
    code, _, err = cli("run", suite, "--pipeline", "identity", "--pipeline", "oracle_reproject", "--pipeline", evil,
                       "--out", out, "--no-progress", "--visuals", "2")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    index = build_site([out], tmp_path / "site")
    assert index == tmp_path / "site" / "index.html" and index.is_file()
    html = (index.parent / "suite-tiny.html").read_text()
    rows = Tables(html).rows("t-image", "measured")
    psnr = {p: summary["results"][p]["psnr"] for p in summary["results"]}
    assert [r[0][0] for r in rows] == sorted(psnr, key=lambda p: -psnr[p]["mean"])
    for r in rows:
        m = psnr[r[0][0]]
        assert float(r[1][1]["data-sort"]) == m["mean"] and f"({m['n']})" in r[1][0]
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img src=x" not in html
    assert html.count("<svg xmlns") == 2 and 'class="band"' in html  # angle and radius plots, in_range shaded
    grids = sorted((index.parent / "img" / "tiny" / "oracle_reproject").glob("*.png"))
    assert [g.name for g in grids] == ["car_0000_000000-000001.png", "car_0000_000000-000002.png"]
    meta = summary["meta"]
    pipe_page = (index.parent / "pipeline-tiny.oracle_reproject.html").read_text()
    assert meta["config_hashes"]["oracle_reproject"] in pipe_page and meta["run_keys"]["oracle_reproject"] in pipe_page
