"""Jumpstarter power drivers."""
