"""What every lab command shares: the client options, durations, selectors, and running a call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from jumpstarter.config.durations import parse_duration

if TYPE_CHECKING:  # gRPC and the protocol load when a command runs, not when `jmp` starts
    from jumpstarter.client.lab import LabClient
    from jumpstarter.config.client import ClientConfig

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Duration(click.ParamType):  # type: ignore[type-arg]
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


def client_options(function: F) -> F:
    """``--client NAME`` and ``--client-config FILE``, as every command of the original has them."""
    function = click.option(
        "--client-config", metavar="FILE", help="The client configuration in this file (as jmp admin writes it)."
    )(function)
    return click.option("--client", metavar="NAME", help="The client configuration of this name (jmp config client).")(
        function
    )


def selector_option(function: F) -> F:
    return click.option(
        "-l",
        "--selector",
        multiple=True,
        metavar="KEY=VALUE",
        help="Labels to match (key=value, key!=value, 'key in (a,b)'); repeat or join with commas.",
    )(function)


def output_option(choices: tuple[str, ...] = ("json", "yaml", "name")) -> Callable[[F], F]:
    return click.option(
        "-o", "--output", type=click.Choice(choices), help="For scripts: " + ", ".join(choices) + " (default: a table)."
    )


def joined(selector: tuple[str, ...]) -> str:
    return ",".join(part.strip() for part in selector if part.strip())


def client_config(client: str | None, path: str | None) -> ClientConfig:
    """The client configuration these options choose, fit to reach a lab; ClickException otherwise."""
    from jumpstarter.config.client import lab_problem, resolve_client
    from jumpstarter.config.yaml import ConfigError

    try:
        resolved = resolve_client(client, path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    problem = lab_problem(resolved)
    if problem is not None:
        raise click.ClickException(f"{problem} (jmp config client create NAME writes one that can)")
    return resolved.config


def run_lab(client: str | None, path: str | None, call: Callable[[LabClient], Awaitable[T]]) -> T:
    """Run `call` with a LabClient of the chosen configuration; a refusal is a one-line ClickException."""
    import anyio

    from jumpstarter.client.lab import LabClient, LabError

    config = client_config(client, path)

    async def main() -> T:
        async with LabClient.open(config) as lab:
            return await call(lab)

    try:
        return anyio.run(main)
    except LabError as error:
        raise click.ClickException(str(error)) from None
