"""Plumbing shared by the peer scripts, which run with the original jumpstarter's python.

Only the standard library is used here: this module is imported by the scripts (from the
script directory), never by the tests.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO


def take_stdout() -> TextIO:
    """Keep the real stdout for the JSON answer; send everything else printed to stderr.

    The original's clients log through rich handlers that print to stdout, which would
    corrupt the answer.
    """
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return answer


def send(answer: TextIO, message: Any) -> None:
    """Write one JSON line and flush it."""
    answer.write(json.dumps(message, default=repr) + "\n")
    answer.flush()


def describe_error(error: BaseException) -> dict[str, Any]:
    """An exception as data: its class, the names of its bases and its message.

    The original's errors append "(Caused by: ...)" to str(); their own message is kept apart.
    """
    message = getattr(error, "message", None)
    # Task groups wrap what failed inside them: keep the inner exceptions.
    inner = [describe_error(exception) for exception in getattr(error, "exceptions", ())]
    return {
        "ok": False,
        "type": type(error).__name__,
        "module": type(error).__module__,
        "mro": [cls.__name__ for cls in type(error).__mro__],
        "message": message if isinstance(message, str) else str(error),
        "text": str(error),
        "exceptions": inner,
    }
