"""Capture integrations, one module per framework.

Import the one you need (``exporter.capture.estimator``, ``exporter.capture.keras``);
this package itself imports no framework, and nothing in the core imports it.
"""
