"""`vlcurate selector ...`: train the score stage's retrieval model on human choices, and make data to try it on."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vlcurate.commands import ConfigOpt, SetOpt, config_problem
from vlcurate.stages.selector import SelectorTrainConfig
from vlcurate.stages.scorers.base import ScorerConfig

app = typer.Typer(help="Fine-tune the score stage's retrieval model on which candidate people chose.",
                  no_args_is_help=True, add_completion=False)


class SelectorRunConfig(BaseModel):
    """`selector train`'s config: the scorer to start from (as the score stage names it) and how to train."""

    model_config = ConfigDict(extra="forbid")

    scorer: ScorerConfig = Field(default_factory=lambda: ScorerConfig(kind="open_clip", model="ViT-B-32",
                                                                      pretrained="laion2b_s34b_b79k"),
                                 description="the base model: the score stage's scorer config")
    train: SelectorTrainConfig = Field(default_factory=SelectorTrainConfig)


@app.command("train")
def train(
    labels: Path = typer.Argument(..., exists=True, dir_okay=False,
                                  help="CSV or Parquet: clip_id plus teacher and/or text naming the chosen candidate"),
    captions: Path = typer.Argument(..., exists=True,
                                    help="captions manifest: a .parquet, a caption stage folder or a run's output"),
    to: Path = typer.Option(..., "--to", help="selector folder to write (must not exist or be empty)"),
    config: Optional[Path] = ConfigOpt,
    overrides: Optional[list[str]] = SetOpt,
) -> None:
    """Fine-tune the retrieval model so the labelled candidate outranks the clip's others.

    Each clip's other candidates are hard negatives (weight 1), other clips' captions in the batch easy ones
    (weight 0.01), as Panda-70M trained its selector. Selection accuracy on the held-out clips is printed before
    and after. --to gets the model in its library's own format plus selector.json (base model and weights,
    options, data sizes, loss, accuracy). Keys: `scorer.*` (the score stage's scorer) and `train.*` (epochs, lr,
    batch_size, holdout, hard_negative_weight, in_batch_negative_weight, seed, device, threads, ...); `vlcurate
    selector train --help` and the docs list them. Score with the result by path:

        vlcurate score -o RUN --overwrite --set score.scorer.model=SELECTOR_DIR

    Try it offline: `vlcurate selector synth DATA`, then train on DATA/labels.csv and DATA with
    --set scorer.model=tiny:open_clip --set scorer.pretrained=null --set train.lr=1e-3 --set train.epochs=12.
    """
    from vlcurate.pipeline.yaml_layers import load_config_data
    from vlcurate.stages.selector import train_from_files

    try:
        cfg = SelectorRunConfig.model_validate(load_config_data(None, config, overrides))
        result = train_from_files(labels, captions, cfg.scorer, to, cfg.train)
    except ValidationError as exc:
        typer.secho(f"error: {config_problem(exc)}", fg="red", err=True)
        raise typer.Exit(2) from None
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:
        typer.secho(f"error: {' '.join(str(exc).split())}", fg="red", err=True)
        raise typer.Exit(2) from None
    _report(result, cfg.scorer.kind)


def _report(result: Any, kind: str) -> None:
    typer.echo(f"trained on {result.train_clips} clips, {result.steps} steps, {result.seconds:.1f}s on "
               f"{result.device}; loss {result.loss_per_epoch[0]:.4f} -> {result.loss_per_epoch[-1]:.4f}")
    if result.skipped:
        typer.echo("labelled clips left out: " + ", ".join(f"{k} {v}" for k, v in sorted(result.skipped.items())))
    if result.holdout_clips:
        typer.echo(f"held-out selection accuracy ({result.holdout_clips} clips, chance {result.holdout_chance:.3f}): "
                   f"before {result.holdout_before:.3f} -> after {result.holdout_after:.3f}")
    typer.echo(f"train selection accuracy: before {result.train_before:.3f} -> after {result.train_after:.3f}")
    typer.echo(f"selector: {result.out}  (score with --set score.scorer.kind={kind} "
               f"--set score.scorer.model={result.out})")


@app.command("synth")
def synth(
    out: Path = typer.Argument(..., help="folder: writes caption/ (a finished caption stage) and "
                                         "labels.csv"),
    clips: int = typer.Option(400, "--clips", min=1),
    seed: int = typer.Option(0, "--seed"),
    frames: int = typer.Option(2, "--frames", min=1, help="frames per clip"),
    candidates: int = typer.Option(4, "--candidates", min=2, help="candidates per clip, the true one among them"),
    size: int = typer.Option(64, "--size", min=16, help="frame side in pixels (the tiny model's input is 64)"),
) -> None:
    """Synthetic labelled data: clips of coloured shapes, candidates one colour or shape word off the truth.

    An untrained model picks at chance; `vlcurate selector train` from tiny:open_clip (--lr 1e-3) learns it."""
    from vlcurate.stages.selector.synthetic import SynthConfig, write

    try:
        manifest, labels_path = write(out, SynthConfig(clips=clips, seed=seed, frames=frames, candidates=candidates,
                                                       size=size))
    except ValueError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"captions: {manifest}\nlabels:   {labels_path}")
