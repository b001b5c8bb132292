"""A fine-tuned selector is a folder its scorer kind loads by path (`score.scorer.model: /path/to/selector`):
the model in that library's own local format plus `selector.json`, which says what it was trained from and how.
Kept free of heavy imports: scorers read it in `setup()`, the CLI reads it to print a summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SELECTOR_JSON = "selector.json"
FORMAT = "vlcurate.selector/1"


def selector_info(ref: str | Path) -> dict[str, Any] | None:
    """The folder's selector.json, or None when `ref` is not a selector folder (a hub id, a tag, any other path)."""
    path = Path(ref)
    try:
        meta = path / SELECTOR_JSON
        if not meta.is_file():
            return None
    except OSError:  # a model name that is not a valid path on this system
        return None
    info = json.loads(meta.read_text())
    if info.get("format") != FORMAT:
        raise ValueError(f"{meta}: format {info.get('format')!r}, this version of vlcurate reads {FORMAT!r}")
    return info


def check_kind(info: dict[str, Any], kind: str, ref: str | Path) -> None:
    """A selector holds one library's weights; loading it as another kind would fail deep inside that library."""
    if info.get("kind") != kind:
        raise ValueError(f"{ref} is a selector fine-tuned from a {info.get('kind')} model "
                         f"({info.get('base_model')}); set score.scorer.kind: {info.get('kind')}, not {kind}")


def weights_label(ref: str | Path) -> str:
    """What every score records as the weights: the fine-tuned folder, never the base's `untrained` or tag."""
    return f"selector:{Path(ref).resolve()}"
