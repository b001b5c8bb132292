"""vlcurate: raw videos -> a captioned video-text WebDataset.

The installed package is one namespace: `vlcurate` (this folder, the application shell: the CLI, the run config,
chaining, status, profiles), `vlcurate.pipeline` (the framework), `vlcurate.stages` (the stages and their plug-ins),
`vlcurate.manifests` (the Arrow contracts between stages). The Python API is imported on first use, so
`import vlcurate` stays cheap:

    from vlcurate import clip_dataset, load_run_config, run_stages
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {"clip_dataset": "vlcurate.stages.shard.loader", "collate_clips": "vlcurate.stages.shard.loader",
        "load_run_config": "vlcurate.config",
        "run_stages": "vlcurate.run"}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'vlcurate' has no attribute {name!r}")
    return getattr(importlib.import_module(_API[name]), name)
