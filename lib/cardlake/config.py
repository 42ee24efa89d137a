"""Typed, frozen settings: one strict loader and one overlay scheme for every file in ``conf/``.

Every settings file ``conf/<name>.yaml`` (``base``, ``bronze``, ``gold``, ``ml``, ...) is read the
same way, by :func:`load_settings`:

1. ``conf/<name>.yaml``, the defaults;
2. the environment's overlay ``conf/<env>.yaml``: its top-level sections overlay ``base.yaml``
   and its ``<name>:`` section overlays ``<name>.yaml`` (so ``test.yaml`` holds every test
   setting in one place: ``spark: {profile: test}``, ``ml: {segmentation: {k_max: 4}}``);
3. dotted overrides from the command line or a test (``{"paths.lake_root": "/tmp/lake"}``).

Mappings merge key by key; anything else in a later layer replaces the earlier value. The result
is built into frozen dataclasses, checked field by field: nested dataclasses, tuples, mappings,
dates, literals and optionals. An unknown key, a missing required key, a value of the wrong type
or a value its dataclass's ``__post_init__`` refuses is a :class:`ConfigError` naming the file
and the key. ``${VAR}`` in a string reads the environment; an unset variable is an error, never
an empty string. ``CARDLAKE_CONF_DIR`` moves the whole folder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

ENV_VAR = "CARDLAKE_ENV"
CONF_DIR_VAR = "CARDLAKE_CONF_DIR"
DEFAULT_ENV = "local"
BASE = "base"
HOME_VAR = "CARDLAKE_HOME"
# The checkout holding conf/ and sql/. Installed from a wheel (a cluster, a Databricks job) the
# package sits apart from those files, so $CARDLAKE_HOME says where they are.
PROJECT_ROOT = Path(os.environ.get(HOME_VAR) or Path(__file__).resolve().parents[2])

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PARENT = re.compile(r"(\.[^.\[]*|\[\d+\])$")  # the last ".key" or "[index]" of a dotted key
T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file is wrong; the message names the key and the file."""


@dataclass(frozen=True)
class PathsConfig:
    lake_root: str
    landing_root: str
    truth_root: str


S3_SCHEMES = ("s3a://", "s3://", "s3n://")  # the schemes S3's clients (Hadoop, boto3, Arrow) use


def is_object_store(uri: str) -> bool:
    """Whether a lake, landing or output root names an object store (``s3a://bucket/...``),
    not a local or mounted folder (a plain path, ``file:/...`` or ``file:///...``)."""
    return "://" in uri and not uri.startswith("file:")


def local_path(uri: str) -> str:
    """The folder a local root names, without its ``file:`` prefix."""
    if is_object_store(uri):
        raise ValueError(f"{uri}: an object store, not a local folder")
    if uri.startswith("file://"):
        return uri.removeprefix("file://")
    return uri.removeprefix("file:")


@dataclass(frozen=True)
class SparkConfig:
    profile: Literal["local", "large", "test", "cluster"]
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
class QualityConfig:
    # Each stage validates the silver and gold tables it wrote (cardlake.quality.layers). Off,
    # the stage records nothing and never fails on quality: for tests that run a stage for its
    # other behaviour (the suites cost a Spark job per expectation).
    stage_checks: bool = True
    # Frames up to this many rows are validated by GE's pandas engine on the driver (a Spark
    # job per expectation costs more than the whole check on small data); None: always Spark.
    pandas_max_rows: int | None = 2_000_000


@dataclass(frozen=True)
class Config:
    """The whole configuration of one environment (``base.yaml`` and its overlay)."""

    env: str
    paths: PathsConfig
    spark: SparkConfig
    tables: TablesConfig
    quality: QualityConfig = field(default_factory=QualityConfig)
    # The generator's parameters, untyped here: synth sits above config (it is read by jobs,
    # tests and bench only), which load it with load_settings(SynthParams, "base", section=...).
    synth: Mapping[str, Any] = field(default_factory=dict)

    def lake_path(self, *parts: str) -> str:
        """Joins ``parts`` under the lake root, for local folders and URIs alike."""
        return "/".join([self.paths.lake_root.rstrip("/"), *parts])


# ------------------------------------------------------------------------------ the loader


def conf_dir() -> Path:
    """The folder holding the settings files (``CARDLAKE_CONF_DIR`` overrides it)."""
    return Path(os.environ.get(CONF_DIR_VAR) or PROJECT_ROOT / "conf")


def default_env() -> str:
    """``$CARDLAKE_ENV``, else ``local``."""
    return os.environ.get(ENV_VAR) or DEFAULT_ENV


def known_envs(directory: Path | None = None) -> list[str]:
    """Environments with an overlay file in ``directory``."""
    directory = directory or conf_dir()
    return sorted(p.stem for p in directory.glob("*.yaml") if _is_overlay(p))


def _is_overlay(path: Path) -> bool:
    # An overlay holds only sections of base.yaml and sections named after other settings
    # files; a settings file (ml.yaml, gold.yaml) has keys of its own.
    if path.stem == BASE or not path.is_file():
        return False
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return True  # reported with its line when loaded
    stems = {p.stem for p in path.parent.glob("*.yaml")}
    return isinstance(data, dict) and set(data) <= (_BASE_SECTIONS | stems)


_BASE_SECTIONS = frozenset({"paths", "spark", "tables", "quality", "synth"})


def load_settings(
    cls: type[T],
    name: str,
    *,
    env: str | None = None,
    section: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    directory: Path | None = None,
    file: Path | None = None,
) -> T:
    """Loads one settings file (or one section of it) into the frozen dataclass ``cls``.

    Args:
        cls: the dataclass to build; nested dataclasses, tuples, mappings, dates, literals and
            optionals are checked field by field, then its ``__post_init__`` runs.
        name: the file's stem (``gold`` for ``conf/gold.yaml``).
        env: the overlay (default: ``$CARDLAKE_ENV``, then ``local``); ``conf/<env>.yaml`` is
            optional here (only :func:`load_config` insists on it).
        section: build only this top-level section of the file (``synth`` of ``base``).
        overrides: dotted keys applied last.
        directory: the conf folder (default: :func:`conf_dir`).
        file: read this file instead of ``<directory>/<name>.yaml`` (its folder then holds the
            overlay).

    Raises:
        ConfigError: a file is missing or malformed, or a key is unknown, missing or mistyped;
            the message names the file and the key.
    """
    merged, origin = _layers(
        name, env or default_env(), directory=directory, file=file, overrides=overrides
    )
    if section is not None:
        value = merged.get(section, {})
        return typing.cast(T, _build(cls, {} if value is None else value, section, origin))
    return typing.cast(T, _build(cls, merged, "", origin))


def load_config(
    env: str | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    directory: Path | None = None,
) -> Config:
    """Loads ``base.yaml`` with the overlay of one environment.

    Args:
        env: overlay name (``local``, ``test``, ``cluster``); defaults to ``$CARDLAKE_ENV``, then
            ``local``.
        overrides: dotted keys applied last, e.g. ``{"paths.lake_root": "/tmp/lake"}``; used by
            tests and command-line flags.
        directory: the conf folder; defaults to :func:`conf_dir`.

    Returns:
        A frozen :class:`Config`; relative paths resolved against the project root.

    Raises:
        ConfigError: a file is missing or malformed, or a key is unknown, missing or mistyped.
    """
    env = env or default_env()
    directory = directory or conf_dir()
    overlay = directory / f"{env}.yaml"
    if not overlay.is_file() or not _is_overlay(overlay):
        raise ConfigError(
            f"no overlay for environment {env!r}: {overlay} (known: {known_envs(directory)})"
        )
    merged, origin = _layers(BASE, env, directory=directory, overrides=overrides)
    cfg = _build(Config, {**merged, "env": env}, "", origin)
    paths = PathsConfig(**{k: _resolve_path(v) for k, v in dataclasses.asdict(cfg.paths).items()})
    return dataclasses.replace(cfg, paths=paths)


@dataclass(frozen=True)
class Settings:
    """Everything the stages read, loaded once at the edge and passed down typed.

    ``config`` is ``base.yaml`` with its overlay; each other settings file is one frozen
    dataclass, looked up by its class: ``settings.of(GoldConfig)``.
    """

    config: Config
    sections: Mapping[type, Any] = field(default_factory=dict)

    @property
    def env(self) -> str:
        return self.config.env

    def of(self, cls: type[T]) -> T:
        """The loaded settings of type ``cls``.

        Raises:
            ConfigError: ``cls`` was not loaded at the edge (a harness bug, named as such).
        """
        try:
            return typing.cast(T, self.sections[cls])
        except KeyError:
            raise ConfigError(
                f"settings {cls.__name__} were not loaded (loaded: "
                f"{sorted(c.__name__ for c in self.sections)})"
            ) from None


def load_all(
    env: str | None = None,
    *,
    sections: Mapping[type, str] | Iterable[tuple[type, str]] = (),
    overrides: Mapping[str, Any] | None = None,
    directory: Path | None = None,
) -> Settings:
    """Loads ``base.yaml`` and each ``(dataclass, file name)`` of ``sections`` for one env.

    A file name ``base.<section>`` loads one section of ``base.yaml`` (``base.synth``).

    Overrides whose first part names a file (``gold.sql_server.port``) go to that file; the
    rest go to ``base.yaml``.
    """
    pairs = list(sections.items()) if isinstance(sections, Mapping) else list(sections)
    names = {name.partition(".")[0] for _, name in pairs} - {BASE}
    own: dict[str, dict[str, Any]] = {name: {} for name in names}
    base_overrides: dict[str, Any] = {}
    for dotted, value in (overrides or {}).items():
        head, _, rest = dotted.partition(".")
        if head in names and rest:
            own[head][rest] = value
        else:
            base_overrides[dotted] = value
    config = load_config(env, overrides=base_overrides, directory=directory)
    loaded: dict[type, Any] = {}
    for cls, name in pairs:
        file, _, section = name.partition(".")  # "base.synth": one section of base.yaml
        loaded[cls] = load_settings(
            cls,
            file,
            env=config.env,
            section=section or None,
            directory=directory,
            overrides=base_overrides if file == BASE else own[file],
        )
    return Settings(config=config, sections=loaded)


# ------------------------------------------------------------------------------ layers


@dataclass(frozen=True)
class _Origin:
    file: Path | str
    key: str  # the key as written in that file (``ml.segmentation.k_max`` in test.yaml)


def _layers(
    name: str,
    env: str,
    *,
    directory: Path | None,
    file: Path | None = None,
    overrides: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, _Origin]]:
    if file is not None:
        directory = file.parent
    directory = directory or conf_dir()
    file = file or directory / f"{name}.yaml"
    origin: dict[str, _Origin] = {}
    merged = _merge({}, _read_yaml(file), file, "", origin, "")
    overlay_file = directory / f"{env}.yaml"
    if overlay_file.is_file() and overlay_file != file:
        overlay = _read_yaml(overlay_file)
        if name == BASE:  # the overlay's sections named after another file belong to that file
            others = {p.stem for p in directory.glob("*.yaml")} - _BASE_SECTIONS
            part = {k: v for k, v in overlay.items() if k not in others}
            prefix = ""
        else:
            part = overlay.get(name) or {}
            prefix = f"{name}."
            if not isinstance(part, Mapping):
                raise ConfigError(f"{overlay_file}: {name}: must be a mapping")
        merged = _merge(merged, part, overlay_file, prefix, origin, "")
    for dotted, value in (overrides or {}).items():
        _set_dotted(merged, dotted, value)
        origin[dotted] = _Origin("<overrides>", dotted if name == BASE else f"{name}.{dotted}")
    return _interpolate(merged, origin, ""), origin


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
    into: dict[str, Any],
    new: Mapping[str, Any],
    source: Path,
    prefix: str,
    origin: dict[str, _Origin],
    dotted_parent: str,
) -> dict[str, Any]:
    for key, value in new.items():
        dotted = f"{dotted_parent}{key}"
        if isinstance(value, Mapping) and isinstance(into.get(key), Mapping):
            into[key] = _merge(dict(into[key]), value, source, prefix, origin, f"{dotted}.")
        else:
            into[key] = value
        origin[dotted] = _Origin(source, f"{prefix}{dotted}")
    return into


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = dict(child) if isinstance(child, Mapping) else {}
            node[part] = child
        node = child
    node[leaf] = value


def _interpolate(value: Any, origin: Mapping[str, _Origin], dotted: str) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _interpolate(v, origin, f"{dotted}.{k}" if dotted else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, origin, dotted) for v in value]
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


def _where(dotted: str, origin: Mapping[str, _Origin], message: str) -> str:
    probe = dotted
    while probe:  # the file that wrote the key, else its nearest written parent
        found = origin.get(probe)
        if found is not None:
            return f"{found.file}: {found.key}{dotted[len(probe) :]}: {message}"
        probe = _PARENT.sub("", probe) if _PARENT.search(probe) else ""
    child = next((o for k, o in origin.items() if k.startswith(f"{dotted}.") or not dotted), None)
    return f"{child.file if child else 'config'}: {dotted or 'top level'}: {message}"


# ------------------------------------------------------------------------------ typing


def _build(cls: type, values: Any, where: str, origin: Mapping[str, _Origin]) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(_where(where, origin, f"must be a mapping, got {values!r}"))
    fields_by_name = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in values:
        if key not in fields_by_name:
            dotted = f"{where}.{key}" if where else str(key)
            raise ConfigError(
                _where(dotted, origin, f"unknown key {key!r} (known: {sorted(fields_by_name)})")
            )
    kwargs: dict[str, Any] = {}
    for name, fld in fields_by_name.items():
        dotted = f"{where}.{name}" if where else name
        if name not in values:
            if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                raise ConfigError(_where(dotted, origin, f"missing required key {dotted!r}"))
            continue
        kwargs[name] = _check_type(values[name], hints[name], dotted, origin)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(_where(where, origin, str(exc))) from exc


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _check_type(value: Any, hint: Any, dotted: str, origin: Mapping[str, _Origin]) -> Any:
    kind = typing.get_origin(hint)
    if hint is Any:
        return value
    if kind in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        non_null = [o for o in options if o is not type(None)]
        errors: list[ConfigError] = []
        for option in non_null:
            try:
                return _check_type(value, option, dotted, origin)
            except ConfigError as exc:
                errors.append(exc)
        if len(non_null) == 1:
            raise errors[0]
        names = " or ".join(_type_name(o) for o in options)
        raise ConfigError(
            _where(dotted, origin, f"must be {names}, got {type(value).__name__} {value!r}")
        )
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(_where(dotted, origin, f"must be null, got {value!r}"))
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _build(hint, value, dotted, origin)
    if kind is Literal:
        allowed = typing.get_args(hint)
        if value in allowed:
            return value
        raise ConfigError(_where(dotted, origin, f"must be one of {list(allowed)}, got {value!r}"))
    if kind in (Mapping, dict) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(_where(dotted, origin, f"must be a mapping, got {value!r}"))
        args = typing.get_args(hint)
        inner = args[1] if len(args) == 2 else Any
        return types.MappingProxyType(
            {str(k): _check_type(v, inner, f"{dotted}.{k}", origin) for k, v in value.items()}
        )
    if kind in (tuple, list) or hint in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(_where(dotted, origin, f"must be a list, got {value!r}"))
        args = typing.get_args(hint)
        if kind is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(
                    _where(dotted, origin, f"must have {len(args)} items, got {len(value)}")
                )
            return tuple(
                _check_type(v, a, f"{dotted}[{i}]", origin)
                for i, (v, a) in enumerate(zip(args, value, strict=True))
            )
        inner = args[0] if args else Any
        return tuple(_check_type(v, inner, f"{dotted}[{i}]", origin) for i, v in enumerate(value))
    if hint is dt.date:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(
                _where(dotted, origin, f"must be a date (YYYY-MM-DD), got {value!r}")
            ) from None
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
