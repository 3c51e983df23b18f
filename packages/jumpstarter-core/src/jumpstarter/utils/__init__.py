"""Helpers for scripts and tests that run inside ``jmp shell``: `env()` and `env_async()`."""

from jumpstarter.utils.env import env, env_async

__all__ = ["env", "env_async"]
