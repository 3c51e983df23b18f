"""Pieces shared by the driver (exporter) side and the client side."""
