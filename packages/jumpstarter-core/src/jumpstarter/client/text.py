"""Text that an exporter sends, made safe to print on a terminal.

An exporter names its drivers, describes them (``j --help``), relays its log records and
words its errors; a hostile or broken one could put escape sequences in any of them, which
a terminal would obey: retitle the window, clear the screen, move the cursor over a line
to fake a prompt. `printable` shows each control character as an escape (``\\x1b``)
instead, keeping newlines and tabs. The client applies it to what it receives before it
prints or logs it; anything else that prints exporter text should too.
"""

from __future__ import annotations

__all__ = ["printable"]

_KEPT = {ord("\n"), ord("\t")}
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
# Bidirectional overrides and isolates reorder what follows them on screen.
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_TABLE = {code: f"\\x{code:02x}" for code in _CONTROLS if code not in _KEPT} | {
    code: f"\\u{code:04x}" for code in _BIDI
}


def printable(text: str) -> str:
    """`text` with every control character but newline and tab written as an escape."""
    return text.translate(_TABLE)
