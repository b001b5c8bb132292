"""The report's plots as PNG files (matplotlib, no screen, no network): clip durations, scores per teacher and per
filter with their thresholds drawn, win rates, shots per video. Histograms that stats.json already holds are drawn
from its bins, so no plot re-reads the scores."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

PLOT_DIR = "plots"
COLOURS = {"line": "#c0392b", "bar": "#3b6ea5", "bar2": "#7f8c8d"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, folder: Path, name: str) -> str:
    """Write the figure as `plots/<name>.png` under `folder` (no timestamp in the file) and close it."""
    (folder / PLOT_DIR).mkdir(parents=True, exist_ok=True)
    rel = f"{PLOT_DIR}/{name}.png"
    fig.tight_layout()
    fig.savefig(folder / rel, dpi=90, metadata={"Software": None})
    _pyplot().close(fig)
    return rel


def grid(count: int, width: float = 3.2, height: float = 2.3):
    plt = _pyplot()
    cols = min(3, max(1, count))
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def bars_from_bins(ax, histogram: dict[str, Any], colour: str = COLOURS["bar"]) -> None:
    edges, counts = histogram.get("edges") or [], histogram.get("counts") or []
    if len(edges) == len(counts) + 1 and counts:
        ax.stairs(counts, edges, fill=True, color=colour, alpha=0.85)


def draw_limits(ax, limits: dict[str, float]) -> None:
    for side, value in limits.items():
        ax.axvline(value, color=COLOURS["line"], linestyle="--", linewidth=1.4)
        ax.annotate(f"{side} {value:g}", (value, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", color=COLOURS["line"], fontsize=8)


def durations_plot(folder: Path, values: np.ndarray, limits: dict[str, float]) -> dict[str, str] | None:
    if not len(values):
        return None
    fig, (ax,) = grid(1, 6.4, 2.6)
    ax.hist(values, bins=min(40, max(5, int(math.sqrt(len(values))))), color=COLOURS["bar"])
    top = float(values.max()) * 1.5 + 1.0  # a limit far beyond every clip would squash the bars into a corner
    draw_limits(ax, {k: v for k, v in limits.items() if v is not None and v <= top})
    ax.set_xlabel("clip length (s)")
    ax.set_ylabel("clips")
    return {"file": save(fig, folder, "durations"), "title": "Clip durations",
            "caption": f"{len(values)} clips; median {np.median(values):.2f} s, mean {values.mean():.2f} s; split's "
                       "length limits dashed"}


def scores_plot(folder: Path, histograms: dict[str, dict[str, Any]], min_score: float | None) -> dict[str, str] | None:
    """One panel per teacher from score's stats: where its candidates' scores sit (and score.min_score)."""
    if not histograms:
        return None
    fig, axes = grid(len(histograms))
    for ax, (teacher, histogram) in zip(axes, sorted(histograms.items())):
        bars_from_bins(ax, histogram)
        if min_score is not None:
            draw_limits(ax, {"min_score": min_score})
        ax.set_title(f"{teacher} (mean {histogram.get('mean', float('nan')):.3g})", fontsize=9)
        ax.tick_params(labelsize=7)
    return {"file": save(fig, folder, "scores"), "title": "Scores per teacher",
            "caption": "the retrieval model's similarity of each teacher's candidates to their clips"}


def win_rate_plot(folder: Path, win_rate: dict[str, float]) -> dict[str, str] | None:
    if not win_rate:
        return None
    fig, (ax,) = grid(1, 6.4, 0.45 * len(win_rate) + 1.0)
    names = sorted(win_rate, key=lambda t: win_rate[t])
    ax.barh(names, [win_rate[t] for t in names], color=COLOURS["bar"])
    for y, name in enumerate(names):
        ax.annotate(f"{100 * win_rate[name]:.1f}%", (win_rate[name], y), xytext=(3, -3), textcoords="offset points",
                    fontsize=8)
    ax.set_xlim(0, max(1e-9, max(win_rate.values())) * 1.2)
    ax.set_xlabel("share of clips whose chosen caption is this teacher's")
    return {"file": save(fig, folder, "win_rates"), "title": "Win rates per teacher",
            "caption": "which teacher's candidate the scorer chose"}


def shots_plot(folder: Path, counts: dict[int, int]) -> dict[str, str] | None:
    if not counts:
        return None
    fig, (ax,) = grid(1, 6.4, 2.4)
    ax.bar(list(counts), list(counts.values()), color=COLOURS["bar"], width=0.8)
    ax.set_xlabel("detector shots in the video")
    ax.set_ylabel("videos")
    videos = sum(counts.values())
    mean = sum(k * v for k, v in counts.items()) / videos
    return {"file": save(fig, folder, "shots_per_video"), "title": "Shots per video",
            "caption": f"{videos} videos, {mean:.2f} shots each on average"}


def filter_plot(folder: Path, name: str, spec: dict[str, Any]) -> dict[str, str] | None:
    """One panel per score the filter measured, its rule's limits dashed."""
    scores = {k: v for k, v in (spec.get("scores") or {}).items() if v.get("count")}
    if not scores:
        return None
    limits = spec.get("limits") or {}
    fig, axes = grid(len(scores))
    for ax, (score, dist) in zip(axes, sorted(scores.items(), key=lambda kv: (kv[0] not in limits, kv[0]))):
        bars_from_bins(ax, dist.get("histogram") or {})
        draw_limits(ax, limits.get(score) or {})
        ax.set_title(f"{score} (median {(dist.get('percentiles') or {}).get('50', float('nan')):.3g})", fontsize=9)
        ax.tick_params(labelsize=7)
    return {"file": save(fig, folder, f"filter-{name}"), "title": f"{name}: scores",
            "caption": f"{spec.get('rule', '')} (mode {spec.get('mode', '')})"}
