"""Configuration files and the one precedence rule: defaults < config file < flags.

Every component keeps its defaults in a ``@dataclass(kw_only=True)``. A command resolves its
configuration with :func:`resolve_config`: start from the dataclass (or a preset instance of it),
apply the keys of a TOML file (``--config FILE.toml``), then the flags the user actually passed
(a flag left at ``None`` means "not given"). Unknown keys are errors that name the file and key,
never silently ignored.

TOML layout accepted by :func:`config_section`: a component's keys either at the top level or under
a table named after the component (``[model]``, ``[tune]``, ...). Keys use the flag spelling with
underscores (``decoder_layers = 12``); kebab-case keys (``decoder-layers``) are accepted too.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from genoforge.errors import ConfigError

C = TypeVar("C")

SOURCE_DEFAULT = "default"
SOURCE_PRESET = "preset"
SOURCE_FILE = "config file"
SOURCE_FLAG = "flag"


def load_toml_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file.

    Raises:
        ConfigError: the file is missing, unreadable or not valid TOML (the parser's line is named).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; check the --config path")
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already says "(at line N, column M)".
        raise ConfigError(f"{path}: not valid TOML: {exc}; fix the file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc})") from exc


def config_section(table: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The keys for component ``name``: the ``[name]`` table merged over top-level scalar keys."""
    out = {k.replace("-", "_"): v for k, v in table.items() if not isinstance(v, dict)}
    section = table.get(name)
    if isinstance(section, dict):
        out.update({k.replace("-", "_"): v for k, v in section.items()})
    return out


def resolve_config(
    base: C,
    file_values: Mapping[str, Any] | None = None,
    flag_values: Mapping[str, Any] | None = None,
    *,
    file_path: str | Path | None = None,
    ignore_keys: frozenset[str] = frozenset(),
    base_source: str = SOURCE_DEFAULT,
) -> tuple[C, dict[str, str]]:
    """Apply config-file values, then flags, over ``base`` (a dataclass instance).

    Args:
        base: the defaults (or a preset) as a dataclass instance; it is not modified.
        file_values: keys from the config file (see :func:`config_section`).
        flag_values: flags by field name; ``None`` values mean "flag not given" and are skipped.
        file_path: named in error messages about ``file_values``.
        ignore_keys: file keys that belong to the command rather than to the dataclass.
        base_source: what to call the origin of values not overridden ("default" or "preset").

    Returns:
        The resolved instance and, per field, where its value came from.

    Raises:
        ConfigError: a key is not a field of the dataclass, or a value has the wrong type.
    """
    if not dataclasses.is_dataclass(base) or isinstance(base, type):
        raise TypeError("resolve_config needs a dataclass instance")
    fields = {f.name: f for f in dataclasses.fields(base)}
    sources = {name: base_source for name in fields}
    values: dict[str, Any] = {}
    where = f"{file_path}: " if file_path is not None else "config file: "
    for key, value in (file_values or {}).items():
        if key in ignore_keys:
            continue
        if key not in fields:
            raise ConfigError(
                f"{where}unknown key {key!r}; valid keys: {', '.join(sorted(fields))}"
            )
        values[key] = _check_type(fields[key], value, where)
        sources[key] = SOURCE_FILE
    for key, value in (flag_values or {}).items():
        if value is None:
            continue
        if key not in fields:
            raise ConfigError(f"unknown option {key!r}")
        values[key] = value
        sources[key] = SOURCE_FLAG
    try:
        resolved = dataclasses.replace(base, **values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
    return resolved, sources


def _check_type(field: dataclasses.Field, value: Any, where: str) -> Any:
    """Coerce TOML scalars to the field's declared scalar type (int -> float is allowed)."""
    declared = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    declared = str(declared).replace(" ", "")
    kinds = {"int": int, "float": float, "bool": bool, "str": str}
    wanted = [kind for name, kind in kinds.items() if name in declared.split("|")]
    if not wanted or value is None:
        return value
    if isinstance(value, bool) and bool not in wanted:
        raise ConfigError(f"{where}{field.name} = {value!r}: expected {declared}")
    for kind in wanted:
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, kind):
            return value
    raise ConfigError(f"{where}{field.name} = {value!r}: expected {declared}")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (paths become strings)."""
    out = {}
    for key, value in dataclasses.asdict(config).items():
        out[key] = str(value) if isinstance(value, Path) else value
    return out


def write_resolved_config(path: str | Path, sections: Mapping[str, Any]) -> None:
    """Write the resolved configuration (plus where each value came from) as JSON, atomically."""
    from genoforge.io import atomic_write

    with atomic_write(path) as handle:
        json.dump(sections, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")
