"""Where client configurations live, which one is the default, and which one a command uses.

The original's places: ``clients/NAME.yaml`` and ``config.yaml`` (``current-client: NAME``)
under `jumpstarter.config.env.config_home` (``$JMP_CLIENT_CONFIG_HOME``, else
``$XDG_CONFIG_HOME/jumpstarter``, else ``~/.config/jumpstarter``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import Field, ValidationError

from jumpstarter.common.tls import write_secret
from jumpstarter.config._client_schema import API_VERSION, ClientConfig, client_config
from jumpstarter.config._connection import Section
from jumpstarter.config.env import (
    JMP_CLIENT,
    JMP_CLIENT_CONFIG,
    JMP_ENDPOINT,
    JMP_NAME,
    JMP_NAMESPACE,
    JMP_TOKEN,
    config_home,
    user_config_path,
)
from jumpstarter.config.yaml import ConfigError, load_yaml

USER_CONFIG_KIND: Final = "UserConfig"
_ALIAS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
ALIAS_RULE: Final = "letters, digits, '_', '.' and '-', not starting with '.' or '-' (such as lab-a)"

# The environment's overrides of a configuration's fields, in the order they are applied.
_OVERRIDES: Final = (
    (JMP_ENDPOINT, ("endpoint",)),
    (JMP_TOKEN, ("token",)),
    (JMP_NAMESPACE, ("metadata", "namespace")),
    (JMP_NAME, ("metadata", "name")),
)


def clients_dir() -> Path:
    """The directory of the named client configurations (it need not exist)."""
    return config_home() / "clients"


def client_path(alias: str) -> Path:
    """The file of the client configuration `alias`; ConfigError if `alias` cannot name one."""
    if not _ALIAS.fullmatch(alias):
        raise ConfigError(f"{alias!r} cannot name a client configuration: use {ALIAS_RULE}")
    return clients_dir() / f"{alias}.yaml"


def client_names() -> list[str]:
    """The names of the client configurations there are, sorted."""
    directory = clients_dir()
    if not directory.is_dir():
        return []
    return sorted(path.stem for path in directory.glob("*.yaml") if _ALIAS.fullmatch(path.stem))


def load_client_file(path: Path) -> ClientConfig:
    """The client configuration in the file at `path`; ConfigError if it is missing or wrong."""
    if not path.exists():
        raise ConfigError(f"{path}: no such client configuration file")
    return client_config(load_yaml(path))


def load_client(alias: str) -> ClientConfig:
    """The client configuration `alias` (``clients/ALIAS.yaml``); ConfigError naming those there are."""
    path = client_path(alias)
    if not path.exists():
        names = client_names()
        there = f"the ones there: {', '.join(names)}" if names else "there are none yet"
        raise ConfigError(
            f"no client configuration named {alias!r} in {clients_dir()} ({there})\n"
            "  fix: create it with jmp config client create NAME, or see them with jmp config client list"
        )
    return client_config(load_yaml(path))


def save_client(config: ClientConfig, path: Path) -> None:
    """Write `config` to `path`, readable by its owner only: it holds a token."""
    write_secret(path, config.to_yaml().encode())


class _UserSettings(Section):
    current_client: str | None = Field(None, alias="current-client")


class _UserConfig(Section):
    api_version: str = Field(API_VERSION, alias="apiVersion")
    kind: str = USER_CONFIG_KIND
    config: _UserSettings = Field(default_factory=_UserSettings)


def default_client() -> str | None:
    """The name of the default client configuration (``jmp config client use NAME``), if one is chosen."""
    path = user_config_path()
    if not path.exists():
        return None
    located = load_yaml(path)
    if located.data is None:
        return None
    if not isinstance(located.data, dict):
        raise located.error(
            (), "the user configuration is a mapping", "remove the file, then jmp config client use NAME"
        )
    return located.validate(_UserConfig, located.data).config.current_client


def use_client(alias: str | None) -> None:
    """Make `alias` the default client configuration (None: no default), in the user's config.yaml."""
    if alias is not None:
        load_client(alias)  # it exists, and is right
    path = user_config_path()
    data: Any = load_yaml(path).data if path.exists() else None  # a broken file: ConfigError, with where
    if not isinstance(data, dict):
        data = {"apiVersion": API_VERSION, "kind": USER_CONFIG_KIND}
    settings = data.get("config") if isinstance(data.get("config"), dict) else {}
    data["config"] = {**settings, "current-client": alias}  # other keys, the original's or later ones, kept
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(temporary, path)


def delete_client(alias: str) -> str | None:
    """Remove the client configuration `alias`; if it was the default, the next one (by name) becomes
    the default, as with the original. Returns the default afterwards."""
    path = client_path(alias)
    if not path.exists():
        load_client(alias)  # raises, naming those there are
    current = _default_or_none()
    path.unlink()
    if current == alias:
        current = next(iter(client_names()), None)
        use_client(current)
    return current


def _default_or_none() -> str | None:
    try:
        return default_client()
    except ConfigError:
        return None


@dataclass(frozen=True)
class ResolvedClient:
    """The client configuration a command uses, and where it came from (for messages)."""

    config: ClientConfig
    source: str
    alias: str | None = None
    path: Path | None = None


def resolve_client(name: str | None = None, path: str | os.PathLike[str] | None = None) -> ResolvedClient:
    """The client configuration a command uses, the one rule of every command.

    The first of: ``--client NAME`` (`name`), ``--client-config FILE`` (`path`), the file
    ``$JMP_CLIENT_CONFIG`` names (a missing one means the defaults), ``$JMP_CLIENT`` (a
    name), the default client (``jmp config client use NAME``); with none of them, a
    configuration of the environment alone. Then ``$JMP_ENDPOINT``, ``$JMP_TOKEN``,
    ``$JMP_NAMESPACE`` and ``$JMP_NAME`` override its fields. ConfigError for any mistake.
    """
    if name is not None and path is not None:
        raise ConfigError("--client and --client-config both choose the client configuration: give one of them")
    resolved = _chosen(name, path)
    return _overridden(resolved)


def _chosen(name: str | None, path: str | os.PathLike[str] | None) -> ResolvedClient:
    if name is not None:
        return ResolvedClient(load_client(name), f"--client {name}", name, client_path(name))
    if path is not None:
        file = Path(path)
        return ResolvedClient(load_client_file(file), f"--client-config {file}", None, file)
    explicit = os.environ.get(JMP_CLIENT_CONFIG)
    if explicit:
        file = Path(explicit)
        config = client_config(load_yaml(file)) if file.exists() else ClientConfig()
        return ResolvedClient(config, f"${JMP_CLIENT_CONFIG} ({file})", None, file)
    alias = os.environ.get(JMP_CLIENT)
    if alias:
        return ResolvedClient(load_client(alias), f"${JMP_CLIENT} ({alias})", alias, client_path(alias))
    alias = default_client()
    if alias is not None:
        if not client_path(alias).exists():
            raise ConfigError(
                f"{user_config_path()}: the default client {alias!r} has no configuration in {clients_dir()}\n"
                "  fix: choose another with jmp config client use NAME (see jmp config client list)"
            )
        return ResolvedClient(load_client(alias), f"the default client {alias}", alias, client_path(alias))
    return ResolvedClient(ClientConfig(), "the environment")


def _overridden(resolved: ResolvedClient) -> ResolvedClient:
    data = resolved.config.model_dump(by_alias=True, exclude_unset=True)
    given = []
    for variable, field in _OVERRIDES:
        value = os.environ.get(variable)
        if not value:
            continue
        given.append(variable)
        if len(field) == 1:
            data[field[0]] = value
        else:
            data[field[0]] = {**(data.get(field[0]) or {}), field[1]: value}
    if not given:
        return resolved
    if "metadata" in data and "name" not in data["metadata"]:
        raise ConfigError(f"${JMP_NAMESPACE} is set but the client has no name: set ${JMP_NAME} too")
    try:
        config = ClientConfig.model_validate(data)
    except ValidationError as error:
        problem = error.errors()[0]
        loc = tuple(str(part) for part in problem["loc"])
        variable = next((v for v, field in _OVERRIDES if loc[: len(field)] == field), given[0])
        raise ConfigError(f"${variable} is {os.environ[variable]!r}: {problem['msg']}") from None
    return ResolvedClient(
        config, f"{resolved.source} with {', '.join('$' + v for v in given)}", resolved.alias, resolved.path
    )


def lab_problem(resolved: ResolvedClient) -> str | None:
    """What a client configuration lacks to reach a lab controller, or None."""
    missing = [
        key
        for key, value in (
            ("endpoint", resolved.config.endpoint),
            ("token", resolved.config.token),
            ("metadata.name", resolved.config.metadata),
        )
        if not value
    ]
    if not missing:
        return None
    lacks = " and no ".join(missing)
    return f"the client configuration ({resolved.source}) has no {lacks}: it cannot reach a lab controller"


__all__ = [
    "ALIAS_RULE",
    "ResolvedClient",
    "client_names",
    "client_path",
    "clients_dir",
    "default_client",
    "delete_client",
    "lab_problem",
    "load_client",
    "load_client_file",
    "resolve_client",
    "save_client",
    "use_client",
]
