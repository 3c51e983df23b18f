"""The original jumpstarter's ``jumpstarter.common.utils``: `serve()` and `env()` under its import path.

Both live higher up (`jumpstarter.testing`, `jumpstarter.client.environment`); this module
only keeps the path that the original's documentation and tests use. Nothing in ``common``
imports it.
"""

from jumpstarter.client.environment import env, env_async
from jumpstarter.testing import serve, serve_async

__all__ = ["env", "env_async", "serve", "serve_async"]
