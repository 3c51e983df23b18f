"""Checks of files that hold secrets, as ssh makes them before it uses a private key.

A token file or a private key that others can read is no secret any more, and a directory
that others can write lets them swap the files in it; a file of another user may be
changed by them. Each check raises `UnsafePermissions` (a ValueError) that says what is
wrong and the command that fixes it; a missing file or directory passes (whoever reads it
reports that).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["UnsafePermissions", "check_private_directory", "check_secret_file"]


class UnsafePermissions(ValueError):
    """A secret, or the directory that keeps secrets, is open to other users."""


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _check_owner(path: Path, status: os.stat_result, what: str) -> None:
    if status.st_uid not in (os.getuid(), 0):
        raise UnsafePermissions(
            f"{what} {path} belongs to another user (uid {status.st_uid}), who can change it: "
            f"use a file of your own (cp {path} FILE, then chmod 600 FILE)"
        )


def check_secret_file(path: Path, what: str = "the secret file") -> None:
    """Refuse a file holding a secret that is not the user's (or root's), or that the group or
    others may read or write: only 0600 or 0400 (or stricter) will do."""
    status = _stat(path)
    if status is None:
        return
    _check_owner(path, status, what)
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        raise UnsafePermissions(
            f"{what} {path} can be read by other users (permissions {mode:04o}), so it is no secret: "
            f"run `chmod 600 {path}` (and replace the secret if others may have read it)"
        )


def check_private_directory(path: Path, what: str = "the directory") -> None:
    """Refuse a directory that keeps secrets when it is not the user's (or root's), or when the
    group or others may write to it (and so replace its files)."""
    status = _stat(path)
    if status is None:
        return
    _check_owner(path, status, what)
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o022:
        raise UnsafePermissions(
            f"{what} {path} can be written by other users (permissions {mode:04o}), who could replace "
            f"its secrets: run `chmod go-w {path}` (0700 keeps it wholly private)"
        )
