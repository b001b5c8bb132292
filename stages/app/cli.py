"""The `vlcurate` command: one sub-app per stage, and `run` to chain them from one config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from vlcurate.teacher_cli import app as teachers_app
from vlcurate.stages.catalog import DEFAULT_PIPELINE, load
from vlcurate.config_cli import app as config_app
from vlcurate.commands import (ConfigOpt, Executor, ExecutorOpt, InputOpt, OutputOpt, OverwriteOpt, ProfileOpt,
                               RayAddressOpt, SetOpt, VerboseOpt, WaitOpt, add_stage_command, run_command)
from vlcurate.selector_cli import app as selector_app

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RUN_PANEL, PIPELINE_PANEL = "Run", "Pipeline stages (each alone)"
MORE_PANEL, TOOLS_PANEL = "Filters and plug-in stages", "Tools"
app = typer.Typer(help="vlcurate: raw videos -> captioned video-text WebDataset (ingest, split, filters, caption, "
                       "score, shard).", no_args_is_help=True, add_completion=False)


@app.command(rich_help_panel=RUN_PANEL)
def run(
    input_: Optional[str] = InputOpt,
    output: Optional[str] = OutputOpt,
    profile: Optional[str] = ProfileOpt,
    config: Optional[Path] = ConfigOpt,
    overrides: Optional[list[str]] = SetOpt,
    executor: Optional[Executor] = ExecutorOpt,
    ray_address: Optional[str] = RayAddressOpt,
    overwrite: bool = OverwriteOpt,
    stages: Optional[str] = typer.Option(None, "--stages", help="comma-separated subset of the config's stages, "
                                                                "e.g. split,caption"),
    verbose: bool = VerboseOpt,
    wait: bool = WaitOpt,
    no_report: bool = typer.Option(False, "--no-report", help="do not write <output>/report/ at the end"),
) -> None:
    """Run the config's stages (or --stages of them) from one config: `vlcurate run --profile demo`. After the
    last stage it writes the dataset card (shard/README.md) and the report (report/index.html)."""
    names = tuple(s.strip() for s in stages.split(",") if s.strip()) if stages else None
    overrides = [*(overrides or []), "report.enabled=false"] if no_report else overrides
    run_command(names, profile=profile, config=config, overrides=overrides, output=output, input_=input_,
                executor=executor.value if executor else None, ray_address=ray_address, overwrite=overwrite,
                verbose=verbose, wait=wait)


@app.command(rich_help_panel=RUN_PANEL)
def status(
    output: str = typer.Option(..., "--output", "-o", help="the run's output folder"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable, one object per stage"),
) -> None:
    """Where the run in an output folder stands: each stage done, interrupted (and how far) or not started."""
    import json

    from vlcurate.status import describe, stage_states

    from vlcurate.pipeline import storage

    if not (storage.exists(output) if storage.is_remote(output) else Path(output).is_dir()):
        typer.secho(f"error: {output} is not a folder", fg="red", err=True)
        raise typer.Exit(2)
    states = stage_states(output)
    if as_json:
        typer.echo(json.dumps(states, indent=1))
        return
    for entry in states:
        typer.echo(f"{entry['stage']:<8} {describe(entry)}")


@app.command("report", rich_help_panel=RUN_PANEL)
def report_command(
    output: str = typer.Option(..., "--output", "-o", help="the run's output folder"),
    gallery_clips: Optional[int] = typer.Option(None, "--gallery-clips", help="clips in the gallery (a seeded "
                                                                              "sample beyond this; default 480)"),
    page_clips: Optional[int] = typer.Option(None, "--page-clips", help="clips per page (default 48)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="seed of the gallery's sample"),
    to: Optional[str] = typer.Option(None, "--to", help="write the report here (a local folder, say, for a run "
                                                        "on object storage) instead of <output>/report"),
    verbose: bool = VerboseOpt,
    wait: bool = WaitOpt,
) -> None:
    """Write <output>/report/index.html from a finished run (and shard/README.md, the dataset card, if it was
    sharded): funnel, plots, a clip gallery with every candidate, filter galleries, timelines, errors."""
    import json

    from vlcurate.pipeline import storage
    from vlcurate.pipeline.lock import output_lock
    from vlcurate.commands import fail, setup_logging
    from vlcurate.stages.report import ReportConfig, write_card, write_report

    setup_logging(verbose)
    try:
        saved = storage.path(output) / "run_config.json"
        base = (json.loads(saved.read_text()).get("report") or {}) if saved.exists() else {}
        given = {"gallery_clips": gallery_clips, "page_clips": page_clips, "seed": seed}
        config = ReportConfig.model_validate({**base, **{k: v for k, v in given.items() if v is not None}})
        with output_lock(output, wait=wait):
            if (storage.path(output) / "shard" / "_SUCCESS").exists():
                typer.echo(f"dataset card: {write_card(output)}")
            typer.echo(f"report: {write_report(output, config, to)}")
    except Exception as exc:
        raise fail(exc, output, verbose) from None


@app.command(rich_help_panel=TOOLS_PANEL)
def profiles() -> None:
    """List the profiles shipped with vlcurate."""
    from vlcurate.pipeline.yaml_layers import list_profiles
    from vlcurate.config import PROFILES

    for name in list_profiles(PROFILES):
        typer.echo(name)


# one sub-command per registered stage, the default pipeline's first (plugins: `vlcurate run` with `plugins:`)
for _name in sorted(load().names(), key=lambda n: (DEFAULT_PIPELINE.index(n) if n in DEFAULT_PIPELINE else 99, n)):
    add_stage_command(app, _name, load().get(_name).summary, load().get(_name).reads_run_input(),
                      PIPELINE_PANEL if _name in DEFAULT_PIPELINE else MORE_PANEL)
app.add_typer(teachers_app, name="teachers", rich_help_panel=TOOLS_PANEL)
app.add_typer(selector_app, name="selector", rich_help_panel=TOOLS_PANEL)
app.add_typer(config_app, name="config", rich_help_panel=TOOLS_PANEL)

for _command in app.registered_commands:  # a docstring's line breaks are not the help's: one flowing paragraph
    if _command.help is None and _command.callback is not None and _command.callback.__doc__:
        _command.help = " ".join(_command.callback.__doc__.split())


def main() -> None:
    """The `vlcurate` command. A mistyped command or option, or a missing --config file, is one line and exit 2
    (click's usage errors, without typer's boxes)."""
    import sys

    from vlcurate.pipeline.failures import stop_on_signals

    stop_on_signals()  # SIGTERM and SIGHUP end a run as Ctrl-C does: workers go with it
    try:
        code = typer.main.get_command(app).main(prog_name="vlcurate", standalone_mode=False)
    except typer.Abort:
        typer.secho("interrupted", fg="yellow", err=True)
        code = 130
    except typer.TyperException as exc:  # click's usage errors (typer vendors click; these are its public base)
        ctx = getattr(exc, "ctx", None)
        see = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        text = " ".join(exc.format_message().split()) if hasattr(exc, "format_message") else str(exc)
        typer.secho(f"error: {text}{see}", fg="red", err=True)
        code = getattr(exc, "exit_code", 2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
