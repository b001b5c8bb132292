"""`vlcurate status`: where a run in an output folder stands, stage by stage, without loading any model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline import checkpoint, io
from pipeline.executor import stage_dir
from stages.config import STAGE_ORDER


def stage_states(output: str | Path) -> list[dict[str, Any]]:
    """One entry per stage: `done` (with its stats), `interrupted` (with the inputs its saved batches cover),
    `started` (nothing saved yet) or `not started`."""
    from stages.run import STAGES

    states = []
    upstream_rows: int | None = None
    for name in STAGE_ORDER:
        folder = stage_dir(output, name)
        entry: dict[str, Any] = {"stage": name}
        if io.is_done(folder):
            stats = json.loads((folder / io.STATS).read_text()) if (folder / io.STATS).exists() else {}
            entry.update(state="done", rows_in=stats.get("rows_in"), rows_out=stats.get("rows_out"),
                         errors=stats.get("errors_total"), seconds=stats.get("seconds"),
                         resumed_inputs=stats.get("resumed_inputs", 0))
            manifest = folder / io.MANIFEST
            upstream_rows = pq.read_metadata(manifest).num_rows if manifest.exists() else None
        elif (saved := checkpoint.progress(folder, STAGES[name].input_key)) is not None:
            entry.update(state="interrupted", inputs_done=saved[0], inputs=upstream_rows, earlier_parts_done=saved[1])
            upstream_rows = None
        else:
            entry["state"] = "started" if folder.exists() else "not started"
            upstream_rows = None
        states.append(entry)
    return states


def describe(entry: dict[str, Any]) -> str:
    state = entry["state"]
    if state == "done":
        text = f"done: {entry['rows_in']} in, {entry['rows_out']} out, {entry['errors']} errors, {entry['seconds']}s"
        return text + (f" ({entry['resumed_inputs']} inputs from an interrupted run)" if entry["resumed_inputs"]
                       else "")
    if state == "interrupted":
        total = f" of {entry['inputs']}" if entry["inputs"] is not None else ""
        earlier = entry["earlier_parts_done"]
        parts = f"; its earlier parts (caption: teachers) saved {', '.join(map(str, earlier))}" if earlier else ""
        return f"interrupted: {entry['inputs_done']}{total} inputs done{parts}; the same command goes on from there"
    if state == "started":
        return "started: no batch finished yet"
    return "not started"
