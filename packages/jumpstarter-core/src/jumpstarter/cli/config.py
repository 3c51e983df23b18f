"""`jmp config client`: the client configurations (``clients/NAME.yaml``) and the default one."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from jumpstarter.config.client import ClientConfig


@click.group("config")
def config() -> None:
    """Configuration files: the client configurations."""


@config.group("client")
def client() -> None:
    """Client configurations, in the original jumpstarter's format and place.

    \b
    They live in $JMP_CLIENT_CONFIG_HOME/clients/NAME.yaml (default: ~/.config/jumpstarter,
    or $XDG_CONFIG_HOME/jumpstarter); `use` chooses the default one, which commands use
    unless given --client NAME or --client-config FILE.
    """


def _refuse_token(ctx: click.Context, param: click.Parameter, value: object) -> None:
    if value:
        raise click.UsageError(
            "--token: a secret on the command line is visible to every user of this machine; "
            "give --token-file FILE, or pipe it on stdin (--token-file -)",
            ctx=ctx,
        )


@client.command("create")
@click.argument("alias")
@click.option("--namespace", help="The client's namespace in the lab (a Kubernetes namespace).")
@click.option("--name", help="The client's name in the lab (a Kubernetes name).")
@click.option("-e", "--endpoint", help="The lab controller's gRPC address, HOST:PORT.")
@click.option(
    "--token-file",
    metavar="FILE",
    help="A file holding the client's token; - reads stdin (default: asked for on a terminal, else stdin).",
)
@click.option(
    "--tls-ca", metavar="FILE", help="The PEM certificate(s) to trust for the controller (default: the system's)."
)
@click.option("--insecure-tls", is_flag=True, help="Trust whatever certificate the controller shows (still TLS).")
@click.option("-a", "--allow", default="", metavar="PATTERNS", help="Comma-separated client classes to allow (globs).")
@click.option("--unsafe", is_flag=True, help="Allow any client class (trust every exporter).")
@click.option("--out", metavar="FILE", help="Write the configuration to FILE instead of clients/ALIAS.yaml.")
@click.option("-t", "--token", hidden=True, expose_value=False, callback=_refuse_token, is_eager=True)
def create(
    alias: str,
    namespace: str | None,
    name: str | None,
    endpoint: str | None,
    token_file: str | None,
    tls_ca: str | None,
    insecure_tls: bool,
    allow: str,
    unsafe: bool,
    out: str | None,
) -> None:
    """Create the client configuration ALIAS (the first one made becomes the default).

    \b
    Example:
      jmp config client create alice --namespace lab-a --name alice \\
          --endpoint grpc.lab.example.com:443 --tls-ca ca.pem --token-file alice.token
    """
    from jumpstarter.config.client import client_names, client_path, save_client, use_client
    from jumpstarter.config.yaml import ConfigError

    try:
        path = Path(out) if out else client_path(alias)
        if path.exists():
            raise click.ClickException(f"{path} exists already: delete it first (jmp config client delete {alias})")
        namespace = namespace or _ask("namespace", "--namespace")
        name = name or _ask("name", "--name")
        endpoint = endpoint or _ask("endpoint (HOST:PORT)", "--endpoint")
        token = _token(token_file)
        data = {
            "metadata": {"namespace": namespace, "name": name},
            "endpoint": endpoint,
            "token": token,
            "tls": {"ca": _ca(tls_ca) if tls_ca else "", "insecure": insecure_tls},
            "drivers": {"allow": [item.strip() for item in allow.split(",") if item.strip()], "unsafe": unsafe},
        }
        config = _validated(data)
        first = not client_names()
        save_client(config, path)
        if first and not out:
            use_client(alias)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    click.echo(str(path))


def _ask(what: str, option: str) -> str:
    if not sys.stdin.isatty():
        raise click.UsageError(f"give {option}: the client's {what} (stdin is no terminal to ask on)")
    return str(click.prompt(f"The client's {what}"))


def _token(token_file: str | None) -> str:
    if token_file == "-" or (token_file is None and not sys.stdin.isatty()):
        token = sys.stdin.readline().strip()
        source = "stdin"
    elif token_file is None:
        token = str(click.prompt("The client's token (hidden)", hide_input=True)).strip()
        source = "the prompt"
    else:
        try:
            token = Path(token_file).read_text().strip()
        except (OSError, UnicodeDecodeError) as error:
            raise click.ClickException(f"--token-file {token_file}: cannot be read: {error}") from None
        source = f"--token-file {token_file}"
    if not token or len(token.split()) > 1:
        raise click.ClickException(
            f"{source} gave {'no token' if not token else 'more than one word'}: give the token that "
            "jmp admin create client printed, alone"
        )
    return token


def _ca(path: str) -> str:
    from jumpstarter.common.tls import check_pem_certificates

    try:
        pem = Path(path).read_bytes()
        check_pem_certificates(pem, f"--tls-ca {path}")
    except OSError as error:
        raise click.ClickException(f"--tls-ca {path}: cannot be read: {error.strerror or error}") from None
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    return base64.b64encode(pem).decode()


def _validated(data: Mapping[str, object]) -> ClientConfig:
    from pydantic import ValidationError

    from jumpstarter.config.client import ClientConfig

    try:
        return ClientConfig.model_validate(data)
    except ValidationError as error:
        problem = error.errors()[0]
        option = {"metadata": "--" + str(problem["loc"][-1]), "endpoint": "--endpoint"}.get(
            str(problem["loc"][0]), ".".join(map(str, problem["loc"]))
        )
        value = problem.get("input")
        raise click.ClickException(f"{option} {value!r}: {problem['msg'].removeprefix('Value error, ')}") from None


@client.command("list")
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml", "name"]), default="table")
def list_(output: str) -> None:
    """List the client configurations; * marks the default one."""
    from jumpstarter.config.client import client_names, client_path, default_client, load_client
    from jumpstarter.config.yaml import ConfigError

    try:
        current = default_client()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    rows = []
    for alias in client_names():
        try:
            endpoint = load_client(alias).endpoint or ""
        except ConfigError as error:
            click.echo(f"jmp: warning: {str(error).splitlines()[0]}", err=True)
            endpoint = "(invalid)"
        rows.append(
            {"alias": alias, "current": alias == current, "endpoint": endpoint, "path": str(client_path(alias))}
        )
    if output == "name":
        for row in rows:
            click.echo(row["alias"])
    elif output in ("json", "yaml"):
        document = {
            "apiVersion": "jumpstarter.dev/v1alpha1",
            "kind": "ClientConfigList",
            "currentConfig": current,
            "items": rows,
        }
        if output == "json":
            click.echo(json.dumps(document, indent=2))
        else:
            import yaml

            click.echo(yaml.safe_dump(document, sort_keys=False), nl=False)
    else:
        table = [("CURRENT", "ALIAS", "ENDPOINT", "PATH")]
        table += [
            ("*" if row["current"] else "", str(row["alias"]), str(row["endpoint"]), str(row["path"])) for row in rows
        ]
        widths = [max(len(line[column]) for line in table) for column in range(3)]
        for line in table:
            click.echo("  ".join([*(cell.ljust(width) for cell, width in zip(line, widths, strict=False)), line[3]]))


@client.command("use")
@click.argument("alias")
def use(alias: str) -> None:
    """Make ALIAS the default client configuration (in config.yaml, as the original keeps it)."""
    from jumpstarter.config.client import use_client
    from jumpstarter.config.yaml import ConfigError

    try:
        use_client(alias)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


@client.command("delete")
@click.argument("alias")
def delete(alias: str) -> None:
    """Delete the client configuration ALIAS (if it was the default, the next one by name becomes it)."""
    from jumpstarter.config.client import client_path, delete_client
    from jumpstarter.config.yaml import ConfigError

    try:
        path = client_path(alias)
        current = delete_client(alias)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"deleted {path}" + (f"; the default client is now {current}" if current and current != alias else ""))
