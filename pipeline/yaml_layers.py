"""A run config as layers of YAML: a named profile, config files, then `key.path=value` overrides from the command
line, merged into one dict (the typed config built from it is the application's)."""

from __future__ import annotations

from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import yaml

def list_profiles(package: str) -> list[str]:
    """The profiles (`<name>.yaml`) an application ships in `package`."""
    root = importlib_resources.files(package)
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_profile(name: str, package: str) -> dict[str, Any]:
    resource = importlib_resources.files(package) / f"{name}.yaml"
    if not resource.is_file():
        raise ValueError(f"unknown profile {name!r}; shipped profiles: {', '.join(list_profiles(package))}")
    return parse_yaml(resource.read_text(), f"profile {name}") or {}


def parse_yaml(text: str, where: str) -> Any:
    """YAML, or one line that says where it is broken."""
    from vlcurate.pipeline.failures import UserError

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{where}: not valid YAML{at}: {problem}") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    data = parse_yaml(Path(path).read_text(), str(path))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`split.min_clip_s=3` style overrides; values are parsed as YAML so numbers, lists and bools work."""
    data = dict(data)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key.path=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            child = dict(child) if isinstance(child, dict) else {}
            node[key] = child
            node = child
        node[keys[-1]] = parse_yaml(raw, f"--set {item}")
    return data


def load_config_data(
    profile: str | None = None, config: str | Path | None = None, overrides: list[str] | None = None,
    profiles: str | None = None,
) -> dict[str, Any]:
    """Profile first (from the application's package `profiles`), then a YAML file on top, then command-line
    overrides on top of both."""
    data: dict[str, Any] = {}
    if profile:
        if profiles is None:
            raise ValueError(f"profile {profile!r} asked for, and no package of profiles given")
        data = load_profile(profile, profiles)
    if config:
        data = deep_merge(data, load_yaml(config))
    return apply_overrides(data, overrides or [])
