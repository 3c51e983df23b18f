"""Command lines of driver clients: what `j <driver> <command>` runs.

Each client's `cli()` returns a click group named after nothing in particular; `j` mounts
it under the driver's name in the tree. The base `DriverClient.cli()` returns a
`DriverGroup` holding the children's groups; a client class adds its commands to it:

    class PowerClient(DriverClient):
        def cli(self) -> click.Group:
            group = super().cli()

            @group.command()
            def on() -> None:
                \"\"\"Switch the power on.\"\"\"
                self.on()

            return group

Help texts come from the docstrings, unless the exporter's config overrides them: its
``description`` becomes the group's help, and ``methods_description`` the commands' help.
What comes from the exporter (those texts, the drivers' names) is made printable first
(`jumpstarter.client.text.printable`): it cannot send escape sequences to the terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from jumpstarter.client.text import printable

if TYPE_CHECKING:
    from jumpstarter.client.base import DriverClient


class DriverGroup(click.Group):
    """A click group for one driver client, whose commands take their help from the exporter when it has one."""

    def __init__(self, client: DriverClient, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help", printable(client.description) if client.description else _first_paragraph(type(client).__doc__)
        )
        kwargs.setdefault("name", printable(client.name) or "root")
        super().__init__(**kwargs)
        self.client = client

    # click's overloads also take a bare function (@group.command without parentheses): client code does not.
    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], click.Command]:  # type: ignore[override]
        """`click.Group.command`, with the help text of `methods_description` when the exporter sets one."""

        def decorator(function: Callable[..., Any]) -> click.Command:
            name = kwargs.get("name") or (args[0] if args and isinstance(args[0], str) else None)
            name = name or function.__name__.lower().replace("_", "-")
            override = self.client.methods_description.get(name) or self.client.methods_description.get(
                function.__name__
            )
            if override:
                kwargs["help"] = printable(override)
            command: click.Command = super(DriverGroup, self).command(*args, **kwargs)(function)
            return command

        return decorator


class UnavailableDriverGroup(DriverGroup):
    """The group of a driver whose client class is unavailable: any command of its own says why."""

    def __init__(self, client: DriverClient, reason: str) -> None:
        reason = printable(reason)
        super().__init__(client, help=f"(unavailable) {reason}", invoke_without_command=True, callback=self._fail)
        self.reason = reason

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands:  # the children stay usable
            self._fail()
        return super().resolve_command(ctx, args)

    def _fail(self) -> None:
        raise click.ClickException(self.reason)


def _first_paragraph(doc: str | None) -> str | None:
    # A @dataclass without a docstring gets its signature as one: that is no help.
    if not doc or doc.startswith(("DriverClient(", "Base class for driver clients")) or "(*," in doc.split("\n")[0]:
        return None
    return doc.strip().split("\n\n")[0].replace("\n", " ")
