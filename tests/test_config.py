"""Config errors: each exits with code 2 and names file:line, the bad value and the closest valid name."""

from __future__ import annotations

import json

import pytest

from bench.config import Doc, apply_overrides, load_yaml
from bench.errors import ConfigError
from tests.conftest import PROJECT, write_suite


def _line_of(path, needle: str) -> int:
    return next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if needle in ln)


@pytest.mark.parametrize(
    "replace, needle, message, suggestion",
    [
        ({"metrics": "metircs: [psnr]"}, "metircs", "unknown key 'metircs'", "metrics"),
        ({"metrics": "metrics: [psnr, pnsr]"}, "metrics", "unknown metric 'pnsr'", "psnr"),
        ({"pipelines": "pipelines: [identity, idenity]"}, "pipelines", "unknown pipeline 'idenity'", "identity"),
        ({"batch_size": "batch_size: eight"}, "batch_size", "expected int, got str 'eight'", None),
        ({"protocol": "protocol: {kind: source_target}"}, "protocol", "unknown protocol 'source_target'", "source_targets"),
        ({"protocol": "protocol: {kind: source_targets, source: [0]}"}, "protocol", "unknown key 'source'", "sources"),
    ],
)
def test_suite_errors_name_file_line_value_and_suggestion(cli, tmp_path, objects_root, replace, needle, message, suggestion):
    suite = write_suite(tmp_path, objects_root, **replace)
    code, _, err = cli("validate", suite)
    assert code == 2
    assert f"{suite}:{_line_of(suite, needle)}" in err
    assert message in err
    if suggestion:
        assert f"did you mean '{suggestion}'" in err


def test_unknown_stage_in_pipeline(cli, tmp_path):
    pipe = tmp_path / "p.yaml"
    pipe.write_text("name: p\nstages:\n  - stage: copy_source\n  - stage: point_rasterzer\n")
    code, _, err = cli("validate", pipe)
    assert code == 2
    assert f"{pipe}:4: unknown stage 'point_rasterzer'" in err and "did you mean 'point_rasterizer'" in err


def test_wrong_type_of_stage_parameter(cli, tmp_path):
    pipe = tmp_path / "p.yaml"
    pipe.write_text("name: p\nstages:\n  - stage: unproject_depth\n  - stage: point_rasterizer\n    radius_px: big\n")
    code, _, err = cli("validate", pipe)
    assert code == 2 and f"{pipe}:5: expected float, got str 'big'" in err


def test_stage_requirement_missing_from_suite(cli, tmp_path, objects_root):
    """oracle_reproject needs depth; a suite without depth is refused at load time, naming the field."""
    suite = write_suite(tmp_path, objects_root, dataset=f"dataset: {{reader: srn, root: {objects_root}}}")
    code, _, err = cli("validate", suite)
    assert code == 2
    assert "stage 'unproject_depth' requires 'source_depth'" in err
    assert "oracle_reproject.yaml:" in err


def test_missing_files(cli, tmp_path, objects_root):
    code, _, err = cli("validate", tmp_path / "nope.yaml")
    assert code == 2 and "file not found" in err and "nope.yaml" in err
    code, _, err = cli("run", tmp_path / "nope.yaml")
    assert code == 2 and "suite file not found" in err
    suite = write_suite(tmp_path, objects_root, text="include: base.yaml\n")
    code, _, err = cli("validate", suite)
    assert code == 2 and f"{suite}:7: included file not found" in err
    code, _, err = cli("run", "quickstrat")
    assert code == 2 and "unknown suite 'quickstrat'" in err and "did you mean 'quickstart'" in err


def test_missing_dataset_folder_is_a_clear_error(cli, tmp_path, objects_root):
    suite = write_suite(tmp_path, tmp_path / "absent")
    code, _, err = cli("run", suite, "--out", tmp_path / "out", "--no-progress")
    assert code == 2 and "dataset folder not found" in err and "--data-root" in err


def test_unknown_pipeline_on_command_line(cli, tiny_suite):
    code, _, err = cli("run", tiny_suite, "--pipeline", "oracle_reprojection", "--no-progress")
    assert code == 2 and "unknown pipeline 'oracle_reprojection'" in err and "did you mean 'oracle_reproject'" in err
    assert "error: --pipeline: " in err and "suite.yaml" not in err  # the command line named it, not the suite file


def test_set_reaches_a_pipeline_given_by_path(cli, tiny_suite, tmp_path):
    """``--set pipeline.<file stem>.key=value`` for ``--pipeline path/to/<stem>.yaml``; an unknown name is an error."""
    path = PROJECT / "pipelines" / "oracle_reproject.yaml"
    run = ("run", tiny_suite, "--pipeline", path, "--no-progress", "--limit", "2")
    code, _, err = cli(*run, "--out", tmp_path / "a", "--set", "pipeline.oracle_reproject.stages.1.radius_px=3.0")
    assert code == 0, err
    assert cli(*run, "--out", tmp_path / "b")[0] == 0
    keys = [json.loads((tmp_path / o / "summary.json").read_text())["meta"]["run_keys"]["oracle_reproject"] for o in ("a", "b")]
    assert keys[0] != keys[1]  # the override took effect
    code, _, err = cli(*run, "--out", tmp_path / "c", "--set", "pipeline.oracle.stages.1.radius_px=3.0")
    assert code == 2 and "no such pipeline in this run (oracle_reproject)" in err


def test_aliases_are_refused(cli, tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('name: x\na: &a ["lol","lol"]\nb: &b [*a,*a]\nc: [*b,*b]\n')
    code, _, err = cli("validate", bomb)
    assert code == 2 and f"{bomb}:3: YAML anchors and aliases are not supported" in err


def test_include_merges_and_keeps_lines(tmp_path):
    (tmp_path / "base.yaml").write_text("a: 1\nnested:\n  x: 1\n  y: 2\n")
    (tmp_path / "top.yaml").write_text("include: base.yaml\nnested:\n  y: 3\nb: 4\n")
    doc = load_yaml(tmp_path / "top.yaml")
    assert doc.data == {"a": 1, "nested": {"x": 1, "y": 3}, "b": 4}
    assert doc.where(("nested", "x")) == f"{tmp_path / 'base.yaml'}:3"
    assert doc.where(("nested", "y")) == f"{tmp_path / 'top.yaml'}:3"


def test_include_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text("include: b.yaml\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\n")
    with pytest.raises(ConfigError, match="include cycle"):
        load_yaml(tmp_path / "a.yaml")


def test_set_overrides_any_value_and_parses_yaml():
    doc = Doc({"protocol": {"sources": [0]}, "stages": [{"r": 1}]}, {})
    apply_overrides(doc, ["protocol.sources=[64, 104]", "stages.0.r=2.5", "new.key=text"])
    assert doc.data == {"protocol": {"sources": [64, 104]}, "stages": [{"r": 2.5}], "new": {"key": "text"}}
    assert doc.where(("stages", 0, "r")) == "--set stages.0.r=2.5"


def test_set_error_points_at_the_option(cli, tiny_suite):
    code, _, err = cli("validate", tiny_suite)
    assert code == 0
    code, _, err = cli("run", tiny_suite, "--set", "batch_size=many", "--no-progress")
    assert code == 2 and "--set batch_size=many: expected int, got str 'many'" in err
    code, _, err = cli("run", tiny_suite, "--set", "pipeline.oracle_reproject.stages.1.radius=2", "--no-progress")
    assert code == 2 and "unknown key 'radius'" in err and "did you mean 'radius_px'" in err


def test_validate_accepts_shipped_files(cli, monkeypatch):
    from tests.conftest import PROJECT

    monkeypatch.chdir(PROJECT)
    for f in sorted((PROJECT / "pipelines").glob("*.yaml")) + sorted((PROJECT / "suites").glob("*.yaml")):
        code, out, err = cli("validate", f)
        assert code == 0, err
        assert "valid" in out
