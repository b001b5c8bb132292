"""Registries by name, so config picks detectors, teachers and scorers without if-chains."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """A name no entry is registered under: a config mistake (pydantic reports ValueErrors as validation errors),
    and still a KeyError for lookups."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Named entries; with `attribute`, a registered class also gets its key as that class attribute (a stage's
    `name`, a teacher's `kind`), so the key is written once, in the decorator."""

    def __init__(self, kind: str, attribute: str | None = None, groups: tuple[str, ...] = ()):
        self.kind = kind
        self.attribute = attribute
        self.groups = groups  # entry-point groups of installed plug-ins that register here
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(item: T) -> T:
            if name in self._items and self._items[name] is not item:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            if self.attribute:
                own = vars(item).get(self.attribute, name)
                if own != name:
                    raise ValueError(f"{self.kind} {name!r} says its {self.attribute} is {own!r}: the key is its "
                                     f"{self.attribute}, leave the attribute out")
                setattr(item, self.attribute, name)
            self._items[name] = item
            return item

        return decorator

    def get(self, name: str) -> T:
        """The entry `name`; one not registered yet is looked for among the installed plug-ins (entry points) first,
        so a lookup never depends on what this process happened to import before (a worker's, say)."""
        if name not in self._items and self.groups:
            load_entry_points(self.groups)
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownName(f"unknown {self.kind} {name!r}; registered: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items


def entry_point_modules(groups: tuple[str, ...]) -> list[str]:
    """Modules that installed distributions name in these entry-point groups, in a fixed order."""
    from importlib.metadata import entry_points

    return sorted({ep.module for group in groups for ep in entry_points(group=group)})


def load_entry_points(groups: tuple[str, ...]) -> None:
    """Import the installed plug-ins of these groups (each registers itself where it is defined)."""
    import importlib

    for module in entry_point_modules(groups):
        importlib.import_module(module)
