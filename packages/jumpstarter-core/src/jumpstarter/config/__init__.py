"""Configuration files (exporter and client) and environment variables."""
