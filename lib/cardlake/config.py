"""Typed, frozen configuration loaded from ``conf/base.yaml`` plus one overlay per environment.

The overlay (``conf/<env>.yaml``) is merged into the base key by key. Every key must be known:
an unknown key, a missing required key or a value of the wrong type is a ``ConfigError`` that
names the key and the file. ``${VAR}`` in a string value is read from the environment, and a
variable that is not set is an error: nothing is ever defaulted to an empty string.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

ENV_VAR = "CARDLAKE_ENV"
CONF_DIR_VAR = "CARDLAKE_CONF_DIR"
DEFAULT_ENV = "local"
PROJECT_ROOT = Path(__file__).resolve().parents[2]

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class ConfigError(ValueError):
    """A configuration file is wrong; the message names the key and the file."""


@dataclass(frozen=True)
class PathsConfig:
    lake_root: str
    landing_root: str
    truth_root: str


@dataclass(frozen=True)
class SparkConfig:
    profile: Literal["local", "test", "cluster"]
    app_name: str = "cardlake"
    master: str | None = None
    driver_memory: str | None = None
    shuffle_partitions: int | None = None
    log_level: str = "WARN"
    conf: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TablesConfig:
    engine: Literal["auto", "delta-rs", "delta-spark"] = "auto"
    commit_retries: int = 5
    vacuum_retention_hours: int = 168


@dataclass(frozen=True)
class Config:
    """The whole configuration of one environment."""

    env: str
    paths: PathsConfig
    spark: SparkConfig
    tables: TablesConfig
    synth: Any  # cardlake.synth.params.SynthParams; typed loosely to keep config import-light

    def lake_path(self, *parts: str) -> str:
        """Joins ``parts`` under the lake root, for local folders and URIs alike."""
        return "/".join([self.paths.lake_root.rstrip("/"), *parts])


def conf_dir() -> Path:
    """The folder holding base.yaml and the overlays (``CARDLAKE_CONF_DIR`` overrides it)."""
    return Path(os.environ.get(CONF_DIR_VAR, PROJECT_ROOT / "conf"))


def load_config(
    env: str | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    directory: Path | None = None,
) -> Config:
    """Loads the configuration of one environment.

    Args:
        env: overlay name (``local``, ``test``, ``cluster``); defaults to ``$CARDLAKE_ENV``, then
            ``local``.
        overrides: dotted keys applied last, e.g. ``{"paths.lake_root": "/tmp/lake"}``; used by
            tests and command-line flags.
        directory: the conf folder; defaults to :func:`conf_dir`.

    Returns:
        A frozen :class:`Config`.

    Raises:
        ConfigError: a file is missing or malformed, or a key is unknown, missing or mistyped.
    """
    env = env or os.environ.get(ENV_VAR) or DEFAULT_ENV
    directory = directory or conf_dir()
    base_file = directory / "base.yaml"
    overlay_file = directory / f"{env}.yaml"
    if not overlay_file.is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml") if p.stem != "base")
        raise ConfigError(f"no overlay for environment {env!r}: {overlay_file} (known: {known})")

    origin: dict[str, Path] = {}
    merged = _merge({}, _read_yaml(base_file), base_file, origin, "")
    merged = _merge(merged, _read_yaml(overlay_file), overlay_file, origin, "")
    for dotted, value in (overrides or {}).items():
        _set_dotted(merged, dotted, value)
        origin[dotted] = Path("<overrides>")
    merged = _interpolate(merged, origin, "")

    from cardlake.synth.params import SynthParams  # the generator owns its parameters

    sections = {"paths": PathsConfig, "spark": SparkConfig, "tables": TablesConfig}
    unknown = sorted(set(merged) - {*sections, "synth"})
    if unknown:
        raise ConfigError(_where(unknown[0], origin, f"unknown key {unknown[0]!r}"))
    built = {name: _build(cls, merged.get(name), name, origin) for name, cls in sections.items()}
    built["synth"] = _build(SynthParams, merged.get("synth") or {}, "synth", origin)
    paths: PathsConfig = built["paths"]
    built["paths"] = PathsConfig(
        **{k: _resolve_path(v) for k, v in dataclasses.asdict(paths).items()}
    )
    return Config(env=env, **built)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def _merge(
    into: dict[str, Any], new: Mapping[str, Any], source: Path, origin: dict[str, Path], prefix: str
) -> dict[str, Any]:
    # Mappings merge key by key; anything else in the overlay replaces the base value.
    for key, value in new.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(into.get(key), Mapping) and value:
            into[key] = _merge(dict(into[key]), value, source, origin, f"{dotted}.")
        else:
            into[key] = value
            origin[dotted] = source
    return into


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _interpolate(value: Any, origin: dict[str, Path], dotted: str) -> Any:
    if isinstance(value, dict):
        return {
            k: _interpolate(v, origin, f"{dotted}.{k}" if dotted else k) for k, v in value.items()
        }
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            found = os.environ.get(name)
            if not found:
                raise ConfigError(
                    _where(dotted, origin, f"environment variable {name} is not set (or empty)")
                )
            return found

        return _ENV_REFERENCE.sub(lookup, value)
    return value


def _where(dotted: str, origin: Mapping[str, Path], message: str) -> str:
    source = origin.get(dotted)
    if source is None:  # a section key: name the file that introduced any of its children
        source = next((p for k, p in origin.items() if k.startswith(f"{dotted}.")), None)
    return f"{source or 'config'}: {dotted}: {message}"


def _build(cls: type, values: Any, section: str, origin: Mapping[str, Path]) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(_where(section, origin, "must be a mapping"))
    fields_by_name = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in values:
        if key not in fields_by_name:
            raise ConfigError(_where(f"{section}.{key}", origin, f"unknown key {key!r}"))
    kwargs: dict[str, Any] = {}
    for name, fld in fields_by_name.items():
        dotted = f"{section}.{name}"
        if name not in values:
            no_default = fld.default is dataclasses.MISSING
            if no_default and fld.default_factory is dataclasses.MISSING:
                raise ConfigError(_where(section, origin, f"missing required key {dotted!r}"))
            continue
        kwargs[name] = _check_type(values[name], hints[name], dotted, origin)
    return cls(**kwargs)


def _check_type(value: Any, hint: Any, dotted: str, origin: Mapping[str, Path]) -> Any:
    origin_type = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin_type in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        for option in options:
            try:
                return _check_type(value, option, dotted, origin)
            except ConfigError:
                continue
        names = " or ".join(
            "null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options
        )
        raise ConfigError(
            _where(dotted, origin, f"must be {names}, got {type(value).__name__} {value!r}")
        )
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(_where(dotted, origin, f"expected null, got {value!r}"))
    if origin_type is Literal:
        allowed = typing.get_args(hint)
        if value in allowed:
            return value
        raise ConfigError(_where(dotted, origin, f"must be one of {list(allowed)}, got {value!r}"))
    if origin_type in (Mapping, dict) or hint in (dict, Mapping):
        if isinstance(value, Mapping):
            return types.MappingProxyType({str(k): v for k, v in value.items()})
        raise ConfigError(_where(dotted, origin, f"must be a mapping, got {value!r}"))
    if origin_type in (tuple, list) or hint in (tuple, list):
        if isinstance(value, list | tuple):
            return tuple(value)
        raise ConfigError(_where(dotted, origin, f"must be a list, got {value!r}"))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
        raise ConfigError(
            _where(dotted, origin, f"must be {hint.__name__}, got {type(value).__name__} {value!r}")
        )
    return value


def _resolve_path(value: str) -> str:
    if _URI_SCHEME.match(value):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (PROJECT_ROOT / path).resolve())
