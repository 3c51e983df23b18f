"""`env()` and `env_async()` under the import path of the original jumpstarter.

They live in `jumpstarter.client.environment` (``from jumpstarter.client import env``);
this package keeps ``jumpstarter.utils`` and ``jumpstarter.utils.env`` working for
scripts written for the original.
"""

from jumpstarter.client.environment import env, env_async

__all__ = ["env", "env_async"]
