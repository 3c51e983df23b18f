"""The controller distribution's `jmp` commands, plugged in through the ``jumpstarter.cli`` entry-point group.

Each command lives in a module of its own (``cli_router`` ...); this module only names them for the
entry points, so that loading one does not import the others.
"""

from __future__ import annotations

from jumpstarter_controller.cli_router import router

__all__ = ["router"]
