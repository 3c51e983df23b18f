"""Jumpstarter serial drivers."""
