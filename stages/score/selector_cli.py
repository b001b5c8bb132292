"""`vlcurate selector ...`: train the score stage's retrieval model on human choices, and make data to try it on."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Fine-tune the score stage's retrieval model on which candidate people chose.",
                  no_args_is_help=True, add_completion=False)


@app.command("train")
def train(
    labels: Path = typer.Argument(..., exists=True, dir_okay=False,
                                  help="CSV or Parquet: clip_id plus teacher and/or text naming the chosen candidate"),
    captions: Path = typer.Argument(..., exists=True,
                                    help="captions manifest: a .parquet, a caption stage folder or a run's output"),
    out: Path = typer.Option(..., "--out", "-o", help="selector folder to write (must not exist or be empty)"),
    kind: str = typer.Option("open_clip", "--kind", help="scorer kind of the base model: open_clip or hf_clip"),
    base_model: str = typer.Option("ViT-B-32", "--base-model",
                                   help="the model score uses: open_clip name, hub id, folder or tiny:<name>"),
    pretrained: Optional[str] = typer.Option("laion2b_s34b_b79k", "--pretrained",
                                             help="open_clip pretrained tag or checkpoint ('none': random init)"),
    epochs: int = typer.Option(5, "--epochs", min=1),
    lr: float = typer.Option(1e-5, "--lr", help="AdamW learning rate; ~1e-3 for a model trained from scratch"),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="labelled clips per step"),
    holdout: float = typer.Option(0.2, "--holdout", min=0.0, max=0.99,
                                  help="fraction of clips held out for accuracy, fixed by a hash of the clip id"),
    hard_weight: float = typer.Option(1.0, "--hard-weight", min=0.0,
                                      help="loss weight of the clip's other candidates (hard negatives)"),
    in_batch_weight: float = typer.Option(0.01, "--in-batch-weight", min=0.0,
                                          help="loss weight of other clips' captions in the batch"),
    weight_decay: float = typer.Option(0.0, "--weight-decay", min=0.0),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto (cuda when available), cpu, cuda, cuda:1, ..."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads (default: all cores)"),
) -> None:
    """Fine-tune the retrieval model so the labelled candidate outranks the clip's others.

    Each clip's other candidates are hard negatives (weight 1), other clips' captions in the batch easy ones
    (weight 0.01), as Panda-70M trained its selector. Selection accuracy on the held-out clips is printed before
    and after. --out gets the model in its library's own format plus selector.json (base model and weights,
    options, data sizes, loss, accuracy). Score with it by path, as the same --kind:

        vlcurate score -o RUN --overwrite --set score.scorer.model=SELECTOR_DIR

    Try it offline: `vlcurate selector synth DATA`, then train from --base-model tiny:open_clip --lr 1e-3
    --epochs 12 --holdout 0.25 on DATA/labels.csv and DATA.
    """
    from pydantic import ValidationError

    from stages.scorers.base import ScorerConfig
    from stages.score.selector import SelectorTrainConfig, train_from_files

    try:
        scorer = ScorerConfig(kind=kind, model=base_model,
                              pretrained=None if (pretrained or "").lower() in ("", "none") else pretrained)
        config = SelectorTrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, holdout=holdout,
                                     hard_negative_weight=hard_weight, in_batch_negative_weight=in_batch_weight,
                                     weight_decay=weight_decay, seed=seed, device=device, threads=threads)
    except ValidationError as exc:
        typer.secho(f"invalid option:\n{exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    try:
        result = train_from_files(labels, captions, scorer, out, config)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None

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
    from stages.score.synthetic import SynthConfig, write

    try:
        manifest, labels_path = write(out, SynthConfig(clips=clips, seed=seed, frames=frames, candidates=candidates,
                                                       size=size))
    except ValueError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"captions: {manifest}\nlabels:   {labels_path}")
