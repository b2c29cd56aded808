"""The version of summary-exporter: one place, importable from the bottom layer."""

__version__ = "0.1.0"
