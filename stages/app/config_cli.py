"""`vlcurate config show` (the effective config after --profile, --config and --set) and `vlcurate config schema
[section]` (every key a section takes: its type, default and what it does), so nobody has to read the source to
configure a run."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from vlcurate.commands import ConfigOpt, ProfileOpt, SetOpt, config_problem

app = typer.Typer(help="See the effective config and every key a stage takes.", no_args_is_help=True,
                  add_completion=False)


@app.command("show")
def show(profile: Optional[str] = ProfileOpt, config: Optional[Path] = ConfigOpt,
         overrides: Optional[list[str]] = SetOpt) -> None:
    """The config a run would use, as YAML: the profile, then --config, then each --set, checked (secrets such as
    storage_options and fetch headers are never shown)."""
    from vlcurate.config import load_run_config

    try:
        cfg = load_run_config(profile, config, overrides)
    except ValidationError as exc:
        typer.secho(f"error: {config_problem(exc)}", fg="red", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # a missing profile or file, malformed YAML: one line
        typer.secho(f"error: {' '.join(str(exc).split())}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, width=120), nl=False)


@app.command("schema")
def schema(section: Optional[str] = typer.Argument(None, help="a stage (e.g. split), `report`, or nothing for the "
                                                               "run's own keys")) -> None:
    """Every key of a section: its dotted path, type, default and description."""
    from vlcurate.config import RunConfig, run_config_class

    full = run_config_class(())
    if section is None:
        model: type[BaseModel] = RunConfig
        prefix = ""
    elif section in full.model_fields and _model_of(full.model_fields[section].annotation) is not None:
        model, prefix = _model_of(full.model_fields[section].annotation), f"{section}."  # type: ignore[assignment]
    else:
        sections = sorted(n for n, f in full.model_fields.items() if _model_of(f.annotation) is not None)
        typer.secho(f"error: no config section {section!r}; sections: {', '.join(sections)}", fg="red", err=True)
        raise typer.Exit(2)
    for key, kind, default, text in rows(model, prefix):
        typer.echo(f"{key}  ({kind}, default {default})" + (f"\n    {text}" if text else ""))


def rows(model: type[BaseModel], prefix: str = "", defaults: BaseModel | None = None
         ) -> Iterator[tuple[str, str, str, str]]:
    """(dotted key, type, default, description) for each field, nested models opened up; `defaults` is the
    nested model's default value where its section sets its own (split's resources: one video a batch)."""
    for name, field in model.model_fields.items():
        if field.exclude and not field.description:
            continue
        inner = _model_of(field.annotation)
        value = getattr(defaults, name) if defaults is not None else _value(field)
        if inner is not None and not _is_list(field.annotation):
            yield from rows(inner, f"{prefix}{name}.", value if isinstance(value, BaseModel) else None)
            continue
        yield (f"{prefix}{name}", _type_name(field.annotation), _shown(value), " ".join(
            (field.description or "").split()) + (" (never written to an output)" if field.exclude else ""))
        if inner is not None:  # a list of models (caption.teachers): the keys of each item
            yield from rows(inner, f"{prefix}{name}[].")


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (list, tuple)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


_REQUIRED = object()


def _value(field: Any) -> Any:
    if field.default_factory is not None:
        try:
            return field.default_factory()
        except TypeError:  # a factory of the validated data: computed from the other keys
            return _REQUIRED
    return _REQUIRED if field.default is PydanticUndefined else field.default


def _shown(value: Any) -> str:
    if value is _REQUIRED:
        return "required"
    value = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
