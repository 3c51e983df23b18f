"""Fixtures of the lab controller's tests: a real `jmp controller run` process per test."""

from testsupport.lab_fixtures import commands, lab, one_event_loop

__all__ = ["commands", "lab", "one_event_loop"]
