"""Jumpstarter network drivers."""
