"""The whole run's typed config: where from, where to, how to execute, which stages in which order, and each
registered stage's own config (a section named after it; unknown keys are errors)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from vlcurate.pipeline import storage
from vlcurate.pipeline.yaml_layers import load_config_data
from vlcurate.stages.catalog import DEFAULT_PIPELINE, STAGES, load
from vlcurate.stages.report import ReportConfig

PROFILES = "vlcurate.profiles"  # the package whose <name>.yaml files are the shipped profiles


class RunConfig(BaseModel):
    """The run's own fields; `run_config_class` adds one section per registered stage."""

    model_config = ConfigDict(extra="forbid")

    input: str | None = Field(None, description="folder, glob, or CSV/JSONL/Parquet list of videos")
    output: str = Field("out/run", description="each stage writes <output>/<stage>/")
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(None, description="None starts local Ray; 'auto' or 'ray://host:port' joins")
    overwrite: bool = False
    stages: list[str] = Field(default_factory=lambda: list(DEFAULT_PIPELINE),
                              description="the pipeline, in order: each stage reads the output of the one before it")
    plugins: list[str] = Field(default_factory=list, description="modules to import that register more stages")
    storage_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, exclude=True,
        description="extra fsspec options per protocol, e.g. {s3: {endpoint_url: ...}}, for what the standard "
                    "variables cannot say; never written to an output (credentials belong in the environment)")
    report: ReportConfig = Field(default_factory=ReportConfig, description="the HTML report written when the run "
                                                                           "ends (<output>/report/index.html)")

    @model_validator(mode="after")
    def _check_stages(self) -> "RunConfig":
        for name in self.stages:
            STAGES.get(name)
        dupes = sorted({n for n in self.stages if self.stages.count(n) > 1})
        if dupes:
            raise ValueError(f"stages listed twice: {dupes}")
        sources = [n for n in self.stages if STAGES.get(n).reads_run_input()]
        if self.stages and (not sources or sources != self.stages[:1]):
            raise ValueError(f"the first stage must read the input videos ({', '.join(sorted(_sources()))}), and "
                             f"only the first: {self.stages}")
        return self

    def stage_config(self, name: str) -> Any:
        return getattr(self, name)

    def resolved_input(self, base: Path | None = None) -> str | None:
        """A relative input in a shipped profile means relative to the project (e.g. the demo manifest)."""
        if self.input is None:
            return None
        if storage.is_remote(self.input):
            return self.input
        path = Path(self.input).expanduser()
        if path.is_absolute() or path.exists() or base is None:
            return str(path) if not any(c in self.input for c in "*?[") else self.input
        candidate = base / path
        return str(candidate) if candidate.exists() else self.input


def _sources() -> set[str]:
    return {n for n in STAGES.names() if STAGES.get(n).reads_run_input()}


def run_config_class(plugins: tuple[str, ...] = ()) -> type[RunConfig]:
    """RunConfig with a typed section for every registered stage (built-in, installed plug-ins and `plugins`).
    The plug-ins are looked up on every call (what is imported already is not imported again): one installed since
    the last call, or a teacher that registers on import, counts."""
    load(plugins)
    return _config_class(tuple(STAGES.names()))


@functools.lru_cache(maxsize=None)
def _config_class(names: tuple[str, ...]) -> type[RunConfig]:
    sections: dict[str, Any] = {name: (STAGES.get(name).config_class,
                                       Field(default_factory=STAGES.get(name).config_class))
                                for name in names}
    return create_model("RunConfig", __base__=RunConfig, **sections)


def load_run_config(profile: str | None = None, config: str | Path | None = None,
                    overrides: list[str] | None = None, **explicit: Any) -> RunConfig:
    data = load_config_data(profile, config, overrides, profiles=PROFILES)
    data.update({k: v for k, v in explicit.items() if v is not None})
    plugins = data.get("plugins") or []
    return run_config_class(tuple(plugins) if isinstance(plugins, list) else ()).model_validate(data)
