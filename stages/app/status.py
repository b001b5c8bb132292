"""`vlcurate status`: where a run in an output folder stands, stage by stage, without loading any model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vlcurate.pipeline import atomic, checkpoint, storage
from vlcurate.pipeline.executor import stage_dir
from vlcurate.stages.catalog import DEFAULT_PIPELINE


def stage_states(output: str | Path) -> list[dict[str, Any]]:
    """One entry per stage: `done` (with its stats), `interrupted` (with the tasks its finished parts cover),
    `started` (nothing planned yet) or `not started`; a stage a live run is working on is `running` (with `by`,
    the run holding the folder's lock)."""
    from vlcurate.pipeline.lock import holder

    by = holder(output)
    states = []
    for name in run_stages_of(output):
        folder = stage_dir(output, name)
        entry: dict[str, Any] = {"stage": name}
        if atomic.is_done(folder):
            stats = json.loads((folder / atomic.STATS).read_text()) if (folder / atomic.STATS).exists() else {}
            entry.update(state="done", rows_in=stats.get("rows_in"), rows_out=stats.get("rows_out"),
                         errors=stats.get("errors_total"), seconds=stats.get("seconds"),
                         resumed_inputs=stats.get("resumed_inputs", 0),
                         driver_peak_rss_mb=stats.get("driver_peak_rss_mb"),
                         worker_peak_rss_mb=stats.get("worker_peak_rss_mb"), fetch=stats.get("fetch"),
                         flags=stats.get("quality_flags"))
        elif (saved := checkpoint.progress(folder)) is not None:
            entry.update(state="interrupted", **saved)
        else:
            entry["state"] = "started" if folder.exists() else "not started"
        if by and entry["state"] in ("interrupted", "started"):
            entry.update(state="running", by=by)
        states.append(entry)
    return states


def run_stages_of(output: str | Path) -> list[str]:
    """The stages of the run in `output`, from the config it saved (the default pipeline before it has one)."""
    saved = storage.path(output) / "run_config.json"
    try:
        return list(json.loads(saved.read_text()).get("stages") or DEFAULT_PIPELINE)
    except (OSError, ValueError):
        return list(DEFAULT_PIPELINE)


def memory(stats: dict[str, Any]) -> str:
    """", peak RSS: driver 310 MB, worker 420 MB" (what a stage's processes peaked at; empty for older runs)."""
    found = [f"{who} {stats[key]:.0f} MB" for who, key in (("driver", "driver_peak_rss_mb"),
                                                           ("worker", "worker_peak_rss_mb"))
             if stats.get(key) is not None]
    return f", peak RSS: {', '.join(found)}" if found else ""


def fetched(counts: dict[str, Any] | None) -> str:
    """", 8 URLs fetched (3 only after retries, 2 kept from before)": ingest's fetches, where there were any."""
    if not counts:
        return ""
    new, reused = counts.get("fetched", 0), counts.get("reused", 0)
    notes = [f"{counts['after_retries']} only after retries"] if counts.get("after_retries") else []
    notes += [f"{reused} kept from before"] if reused else []
    return f", {new} URLs fetched" + (f" ({', '.join(notes)})" if notes else "")


def flagged(counts: dict[str, dict[str, int]] | None) -> str:
    """", quality flags: howtocaption copies_subtitles 2, empty 1": the caption gate's counts, where any were raised."""
    parts = [f"{teacher} " + ", ".join(f"{flag} {n}" for flag, n in flags.items())
             for teacher, flags in (counts or {}).items() if flags]
    return f", quality flags: {'; '.join(parts)}" if parts else ""


def describe(entry: dict[str, Any]) -> str:
    state = entry["state"]
    if state == "done":
        text = f"done: {entry['rows_in']} in, {entry['rows_out']} out, {entry['errors']} errors, {entry['seconds']}s"
        text += memory(entry) + fetched(entry.get("fetch")) + flagged(entry.get("flags"))
        return text + (f" ({entry['resumed_inputs']} inputs from an interrupted run)" if entry["resumed_inputs"]
                       else "")
    if state == "interrupted":
        where = f" (pass {entry['pass']} of {entry['passes']})" if entry["passes"] > 1 else ""
        return (f"interrupted: {entry['tasks_done']} of {entry['tasks']} parts done{where}; the same command goes on "
                "from there")
    if state == "running":
        done = f": {entry['tasks_done']} of {entry['tasks']} parts done" if "tasks" in entry else ""
        return f"running{done} ({entry['by']})"
    if state == "started":
        return "started: no batch finished yet"
    return "not started"
