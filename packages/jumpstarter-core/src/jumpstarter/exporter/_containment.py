"""Driver code must not stop the exporter: the exits it raises become ordinary errors of its call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class DriverExited(RuntimeError):
    """Driver code raised SystemExit or KeyboardInterrupt: that ends its call, not the exporter."""


# What driver code must not be able to raise out of a call: asyncio would stop the event loop.
EXITS = (SystemExit, KeyboardInterrupt)


def exit_as_error(error: BaseException) -> DriverExited:
    return DriverExited(f"the driver raised {type(error).__name__}({', '.join(map(repr, error.args))}) in a call")


@contextmanager
def exits_contained() -> Iterator[None]:
    """Turn SystemExit and KeyboardInterrupt raised by driver code into `DriverExited`."""
    try:
        yield
    except EXITS as error:
        raise exit_as_error(error) from error
