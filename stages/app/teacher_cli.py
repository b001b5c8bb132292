"""`vlcurate teachers ...`: tools for choosing the caption teachers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Choose caption teachers from human labels.", no_args_is_help=True, add_completion=False)


@app.command("select")
def select(
    labels: Path = typer.Argument(..., exists=True, dir_okay=False,
                                  help="CSV or Parquet with clip_id, teacher, good (true/false)"),
    k: Optional[int] = typer.Option(None, "--k", "-k", help="teachers to pick (default: until nothing is added)"),
    output: Optional[Path] = typer.Option(None, "--to", help="write the coverage curve here (.csv/.parquet/.json)"),
) -> None:
    """Greedy set cover: the teachers that together give the most clips a good caption, with the coverage curve."""
    import json

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from vlcurate.stages.caption.teacher_select import curve_table, greedy_cover, read_labels

    try:
        good = read_labels(labels)
    except ValueError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    steps = greedy_cover(good, k)
    teachers = len({t for ts in good.values() for t in ts})
    typer.echo(f"{len(good)} labelled clips, {teachers} teachers with a good caption")
    typer.echo(f"{'k':>3}  {'teacher':<30} {'+clips':>7} {'covered':>8} {'coverage':>9}")
    for s in steps:
        typer.echo(f"{s.k:>3}  {s.teacher:<30} {s.newly_covered:>7} {s.covered:>8} {100 * s.coverage:>8.1f}%")
    if output:
        table = curve_table(steps)
        if output.suffix == ".parquet":
            pq.write_table(table, output)
        elif output.suffix == ".json":
            output.write_text(json.dumps(table.to_pylist(), indent=2) + "\n")
        else:
            pacsv.write_csv(table, output)
