"""Settings read from YAML, typed as their dataclass fields declare them.

Config files and ``section.key=value`` overrides are parsed with the YAML 1.2 core schema
(:func:`load_yaml`), not PyYAML's YAML 1.1 defaults, under which ``3e-4`` is a string (no
dot), ``0123`` the octal 83, ``12:30`` the number 750 and ``on`` / ``yes`` booleans; a number
with a leading zero stays text (a run name ``0123``; an ``int`` field reads it as 123). Each
scalar field of a config dataclass then takes its value through :func:`coerce_scalars`: a
``float`` field takes a number (an int stays an int) or one written as text, an ``int`` field
an integral number,
a ``str`` field a number as its text; anything else is a :class:`~rdam.errors.ConfigError`
naming the setting, before a run starts (``optim.lr=3e-4`` used to reach the optimiser as the
string ``'3e-4'`` and fail inside the first training step, after ``config.yaml`` was written).
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import fields
from typing import Any

import yaml

from rdam.errors import ConfigError

_SCALARS = (bool, int, float, str)


class _CoreSchemaLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema's booleans, integers and floats."""


_CoreSchemaLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|(?:0|[1-9][0-9]*)(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


_CoreSchemaLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_yaml(text: str) -> Any:
    """YAML text under the core schema (see the module notes); safe (no Python objects)."""
    return yaml.load(text, Loader=_CoreSchemaLoader)  # a SafeLoader subclass: safe


def _scalar_types(annotation: Any) -> tuple[tuple[type, ...], bool] | None:
    """The scalar types a field annotated ``annotation`` takes and whether it takes None, or
    None when it is not a plain scalar field (lists, mappings, nested configs)."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    args = typing.get_args(annotation) if union else (annotation,)
    optional = type(None) in args
    kinds = tuple(a for a in args if a in _SCALARS)
    if not kinds or len(kinds) + optional != len(args):
        return None
    return kinds, optional


def _convert(value: Any, kinds: tuple[type, ...], name: str) -> Any:
    wanted = " or ".join(k.__name__ for k in kinds)
    if isinstance(value, bool):  # (a bool is an int to Python; never to a setting)
        if bool in kinds:
            return value
        raise ConfigError(f"{name} must be {wanted}, got the boolean {value!r}")
    if bool in kinds and not (int in kinds or float in kinds or str in kinds):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if isinstance(value, int) and (int in kinds or float in kinds):
        return value  # (an int stays one in a float field: recipes hash the values read)
    if isinstance(value, float) and float in kinds:
        return value
    if isinstance(value, float) and int in kinds and value.is_integer():
        return int(value)
    if isinstance(value, str):
        if str in kinds:
            return value
        for kind in (int, float):
            if kind in kinds:
                try:
                    return kind(value.strip())
                except ValueError:
                    pass
    elif str in kinds and isinstance(value, (int, float)):
        return str(value)
    raise ConfigError(f"{name} must be {wanted}, got {value!r}")


def coerce_scalars(cls: type, data: dict[str, Any], section: str) -> dict[str, Any]:
    """``data`` (the fields of dataclass ``cls`` read from YAML) with each scalar field's value
    as its type (see the module notes); None stays None. Other fields are left as they are.

    Raises:
        ConfigError: a value that is not of the field's type, naming ``section.field``.
    """
    hints = typing.get_type_hints(cls)
    out = dict(data)
    for f in fields(cls):
        if f.name not in out or out[f.name] is None:
            continue
        kinds = _scalar_types(hints.get(f.name))
        if kinds is not None:
            out[f.name] = _convert(out[f.name], kinds[0], f"{section}.{f.name}")
    return out
