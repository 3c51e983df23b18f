"""``jumpstarter.utils.env``, the original jumpstarter's path of `env()`: see `jumpstarter.client.environment`."""

from jumpstarter.client.environment import endpoint_from_environment, env, env_async

__all__ = ["endpoint_from_environment", "env", "env_async"]
