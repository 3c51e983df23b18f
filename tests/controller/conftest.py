"""Fixtures of the lab controller's tests: a real `jmp controller run` process per test."""

from testsupport.lab_fixtures import commands, lab, lab_pycache

__all__ = ["commands", "lab", "lab_pycache"]
