"""Small drivers for the core's tests."""

from __future__ import annotations

from dataclasses import dataclass

from jumpstarter.driver import Driver, export


@dataclass(kw_only=True)
class Named(Driver):
    """A driver that names whatever client class it is told to (`client_path`)."""

    client_path: str = "jumpstarter.client.DriverClient"

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    def __post_init__(self) -> None:
        super().__post_init__()
        # The session asks each instance for its client class.
        self.client = lambda: self.client_path  # type: ignore[method-assign]  # per instance, on purpose

    @export
    def ping(self) -> str:
        return "pong"

    @export
    def click(self) -> str:
        return "clicked"
