"""What every stage command shares: config sources, executor choice, overwrite, logging."""

from __future__ import annotations

import enum
import logging
import os
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError

from vlcurate.pipeline.failures import UserError

ProfileOpt = typer.Option(None, "--profile", "-p", help="named config shipped with vlcurate (demo, pretrained)")
ConfigOpt = typer.Option(None, "--config", "-c", help="YAML run config (applied over --profile)", exists=True,
                         dir_okay=False)
SetOpt = typer.Option(None, "--set", "-s", help="override, e.g. --set split.min_clip_s=3 (repeatable)")
OutputOpt = typer.Option(None, "--output", "-o", help="output folder; each stage writes <output>/<stage>/")
InputOpt = typer.Option(None, "--input", "-i", help="folder, glob, or CSV/JSONL/Parquet list of videos")
class Executor(str, enum.Enum):
    """Where tasks run (the choices --help shows)."""

    local = "local"
    ray = "ray"


ExecutorOpt = typer.Option(None, "--executor", "-e", help="local (in-process) or ray", case_sensitive=False)
RayAddressOpt = typer.Option(None, "--ray-address", help="default: start local Ray; 'auto' or 'ray://host:port'")
OverwriteOpt = typer.Option(False, "--overwrite", help="redo stages that already finished")
VerboseOpt = typer.Option(False, "--verbose", "-v", help="debug logging, and tracebacks with errors")
WaitOpt = typer.Option(False, "--wait", help="if another run is using --output, wait for it to end instead of "
                                             "refusing")


OURS = ("vlcurate",)  # every logger of ours is named by its module, under the one package


def _quiet(record: logging.LogRecord) -> bool:
    """Without --verbose: our own records, and libraries' errors, but not what a library logs on the root logger
    or its retries (open_clip and huggingface_hub report a failed download so, which the one-line error says)."""
    if record.name.split(".")[0] in OURS:
        return True
    return record.levelno >= logging.ERROR and record.name != "root"


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in OURS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_quiet)
        # the hub libraries set their own loggers' levels from these when first imported (workers too)
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def config_problem(exc: ValidationError) -> str:
    """pydantic's report, one line: `split.min_clip_s: Input should be ...; caption.teachers.0.kind: ...`."""
    items = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "config"
        message = str(err.get("msg", "")).removeprefix("Value error, ")
        items.append(f"{where}: {message}" if err.get("type") != "extra_forbidden" else f"{where}: unknown key")
    return "; ".join(items)


def fail(exc: BaseException, output: str, verbose: bool) -> typer.Exit:
    """One line for any failure (the traceback too with --verbose), and the exit code that says whose it is:
    2 the user's to fix, 1 the machine's (rerun once fixed) or ours."""
    import traceback

    from vlcurate.pipeline import failures

    if verbose:
        traceback.print_exception(exc)
    user = failures.find(exc, failures.UserError) or failures.find(exc, ValidationError)
    if user is None and "ModelUnavailable: " in str(exc):  # Ray Data reports an actor's failure as text
        user = failures.ModelUnavailable(str(exc).split("ModelUnavailable: ", 1)[1].splitlines()[0])
    if isinstance(user, ValidationError):
        message, code = f"invalid config: {config_problem(user)}", 2
    elif user is not None:
        message, code = f"error: {user}", 2
    elif isinstance(exc, BrokenProcessPool):
        message, code = (f"a worker process died (killed by the system, e.g. out of memory?); finished parts are "
                         f"saved in {output}: run the same command again to go on from there, with fewer workers "
                         "if memory ran out (--set <stage>.resources.pool_size=N keeps the saved parts)"), 1
    elif failures.is_machine_failure(exc) or "MachineError: " in str(exc):
        cause = failures.find(exc, failures.MachineError)
        if isinstance(getattr(cause, "cause", None), BaseException):  # Ray's wrapper: what the worker raised
            cause = cause.cause  # type: ignore[union-attr]
        detail = _first_line(cause) if cause is not None else "MachineError: " + str(exc).split(
            "MachineError: ", 1)[-1].splitlines()[0]
        message, code = (f"machine failure (nothing was recorded as bad data): {detail}; finished parts"
                         f" are saved in {output}: fix it and run the same command again to go on from there"), 1
    elif type(exc).__name__ == "ReportFailed":
        message, code = f"error: {_first_line(exc, typed=False)}", 1
    elif isinstance(exc, (FileNotFoundError, ValueError, KeyError)):
        message, code = f"error: {_first_line(exc, typed=False)}", 2
    else:
        message, code = f"internal error: {_first_line(exc)} (--verbose shows the traceback)", 1
    typer.secho(message, fg="red", err=True)
    return typer.Exit(code)


def _first_line(exc: BaseException, typed: bool = True) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    text = (text.strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if typed else text


def run_command(stage_names: tuple[str, ...] | None, *, profile: Optional[str], config: Optional[Path],
                overrides: Optional[list[str]], output: Optional[str], input_: Optional[str],
                executor: Optional[str], ray_address: Optional[str], overwrite: bool, verbose: bool,
                wait: bool = False) -> None:
    from vlcurate.config import load_run_config
    from vlcurate.run import run_stages

    setup_logging(verbose)
    try:
        cfg = load_run_config(profile, config, overrides, output=output, input=input_, executor=executor,
                              ray_address=ray_address, overwrite=overwrite or None)
    except Exception as exc:
        raise fail(exc, output or "", verbose) from None
    try:
        if stage_names is not None:
            unknown = [n for n in stage_names if n not in cfg.stages]
            if unknown:
                raise UserError(f"unknown stages {unknown}; this run's stages are {', '.join(cfg.stages)}")
        stage_names = tuple(n for n in cfg.stages if stage_names is None or n in stage_names)
        results = run_stages(cfg, stage_names, wait=wait)
    except KeyboardInterrupt as exc:
        typer.secho(f"\ninterrupted: finished parts are saved in {cfg.output}; run the same command again to go on "
                    "from there (--overwrite starts over)", fg="yellow", err=True)
        raise typer.Exit(128 + getattr(exc, "signum", 2)) from None
    except Exception as exc:
        raise fail(exc, cfg.output, verbose) from None
    report(cfg, stage_names, results)


def report(cfg, stage_names: tuple[str, ...], results: dict) -> None:
    """Each stage's one-line summary; exit 1 when the last stage produced nothing usable."""
    from vlcurate.run import build_stage

    output, last = cfg.output, stage_names[-1]
    stats = results[last]
    if stats["rows_out"] and build_stage(last, cfg).rows_for_next_stage(stats) <= 0:
        typer.secho(f"{last}: nothing could be processed; see {output}/{last}/", fg="red", err=True)
        raise typer.Exit(1)
    if stats["rows_out"] == 0 and stats["rows_in"]:
        typer.secho(f"{last}: nothing came out; see {output}/{last}/", fg="red", err=True)
        raise typer.Exit(1)
    from vlcurate.status import describe, stage_states

    for entry in stage_states(output):
        if entry["stage"] in stage_names:
            typer.echo(f"{entry['stage']:<8} {describe(entry)}")
    typer.echo(f"done: {output}")


def add_stage_command(app: typer.Typer, name: str, help_text: str, reads_input: bool, panel: str) -> None:
    """`vlcurate <stage> [options]`: one command per stage; `--input` only on a stage that reads the input
    videos (the others read the previous stage's output in --output): typer sees the options this stage takes."""
    import inspect
    import typing

    def command(
        input_: Optional[str] = None,
        output: Optional[str] = OutputOpt,
        profile: Optional[str] = ProfileOpt,
        config: Optional[Path] = ConfigOpt,
        overrides: Optional[list[str]] = SetOpt,
        executor: Optional[Executor] = ExecutorOpt,
        ray_address: Optional[str] = RayAddressOpt,
        overwrite: bool = OverwriteOpt,
        verbose: bool = VerboseOpt,
        wait: bool = WaitOpt,
    ) -> None:
        run_command((name,), profile=profile, config=config, overrides=overrides, output=output, input_=input_,
                    executor=executor.value if executor else None, ray_address=ray_address, overwrite=overwrite,
                    verbose=verbose, wait=wait)

    hints = typing.get_type_hints(command)  # this module's annotations are strings; typer reads the types
    params = [p.replace(annotation=hints[p.name]) for p in inspect.signature(command).parameters.values()]
    params[0] = params[0].replace(default=InputOpt)
    command.__signature__ = inspect.Signature(params if reads_input else params[1:])  # type: ignore[attr-defined]
    command.__doc__ = help_text
    app.command(name=name, help=help_text, rich_help_panel=panel)(command)
