"""Generated code of the jumpstarter.client.v1 protocol: do not edit."""
