"""The `vlcurate` command: one sub-app per stage, and `run` to chain them from one config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from stages.caption.cli import app as caption_app
from stages.caption.teacher_cli import app as teachers_app
from stages.cli_common import (ConfigOpt, ExecutorOpt, InputOpt, OutputOpt, OverwriteOpt, ProfileOpt, RayAddressOpt,
                               SetOpt, VerboseOpt, WaitOpt, run_command)
from stages.ingest.cli import app as ingest_app
from stages.score.cli import app as score_app
from stages.score.selector_cli import app as selector_app
from stages.shard.cli import app as shard_app
from stages.split.cli import app as split_app

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(help="vlcurate: raw videos -> captioned video-text WebDataset (ingest, split, caption, score, shard).",
                  no_args_is_help=True, add_completion=False)
app.add_typer(ingest_app, name="ingest")
app.add_typer(split_app, name="split")
app.add_typer(caption_app, name="caption")
app.add_typer(score_app, name="score")
app.add_typer(shard_app, name="shard")
app.add_typer(teachers_app, name="teachers")
app.add_typer(selector_app, name="selector")


@app.command()
def run(
    input_: Optional[str] = InputOpt,
    output: Optional[str] = OutputOpt,
    profile: Optional[str] = ProfileOpt,
    config: Optional[Path] = ConfigOpt,
    overrides: Optional[list[str]] = SetOpt,
    executor: Optional[str] = ExecutorOpt,
    ray_address: Optional[str] = RayAddressOpt,
    overwrite: bool = OverwriteOpt,
    stages: Optional[str] = typer.Option(None, "--stages", help="comma-separated subset, e.g. split,caption"),
    verbose: bool = VerboseOpt,
    wait: bool = WaitOpt,
) -> None:
    """Run all stages (or --stages) from one config: `vlcurate run --profile demo`."""
    from stages.config import STAGE_ORDER

    names = tuple(STAGE_ORDER)
    if stages:
        names = tuple(s.strip() for s in stages.split(",") if s.strip())
        unknown = [s for s in names if s not in STAGE_ORDER]
        if unknown:
            typer.secho(f"unknown stages {unknown}; choose from {', '.join(STAGE_ORDER)}", fg="red", err=True)
            raise typer.Exit(2)
        names = tuple(s for s in STAGE_ORDER if s in names)
    run_command(names, profile=profile, config=config, overrides=overrides, output=output, input_=input_,
                executor=executor, ray_address=ray_address, overwrite=overwrite, verbose=verbose, wait=wait)


@app.command()
def status(
    output: str = typer.Option(..., "--output", "-o", help="the run's output folder"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable, one object per stage"),
) -> None:
    """Where the run in an output folder stands: each stage done, interrupted (and how far) or not started."""
    import json

    from stages.status import describe, stage_states

    if not Path(output).is_dir():
        typer.secho(f"error: {output} is not a folder", fg="red", err=True)
        raise typer.Exit(2)
    states = stage_states(output)
    if as_json:
        typer.echo(json.dumps(states, indent=1))
        return
    for entry in states:
        typer.echo(f"{entry['stage']:<8} {describe(entry)}")


@app.command()
def profiles() -> None:
    """List the profiles shipped with vlcurate."""
    from pipeline.config import list_profiles

    for name in list_profiles():
        typer.echo(name)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
