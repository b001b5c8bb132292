"""`vlcurate config show` and `vlcurate config schema` (stages/config_cli.py)."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from vlcurate.cli import app

runner = CliRunner()


def test_show_prints_the_effective_config_and_never_a_secret():
    result = runner.invoke(app, ["config", "show", "-p", "demo", "--set", "split.min_clip_s=3",
                                 "--set", "ingest.fetch.headers={Authorization: Bearer SECRET}"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown["split"]["min_clip_s"] == 3 and shown["stages"][0] == "ingest" and "SECRET" not in result.output
    assert "headers" not in shown["ingest"]["fetch"] and "storage_options" not in shown


def test_show_refuses_an_unknown_key_in_one_line():
    result = runner.invoke(app, ["config", "show", "-p", "demo", "--set", "split.nope=1"])
    assert result.exit_code == 2 and result.output.strip() == "error: split.nope: unknown key"


def test_schema_lists_every_key_with_its_type_default_and_description():
    result = runner.invoke(app, ["config", "schema", "split"])
    assert result.exit_code == 0, result.output
    assert "split.detector  (str, default adaptive)\n    registered detector" in result.output
    assert "split.resources.batch_size  (int, default 1)" in result.output  # the section's own default
    assert "split.given_spans  (exact | detect, default exact)" in result.output
    teachers = runner.invoke(app, ["config", "schema", "caption"]).output
    assert "caption.teachers[].kind  (str, default required)" in teachers
    assert "input  (str | null, default null)" in runner.invoke(app, ["config", "schema"]).output
    bad = runner.invoke(app, ["config", "schema", "nope"])
    assert bad.exit_code == 2 and bad.output.startswith("error: no config section 'nope'; sections: ")
