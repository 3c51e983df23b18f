"""Generated code of the jumpstarter.v1 protocol: do not edit."""
