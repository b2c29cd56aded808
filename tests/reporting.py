"""Figures the test suite reports (corpus size, fuzz examples run), printed past pytest's capture."""

from __future__ import annotations


def write_line(config, text: str) -> None:
    """Write ``text`` to the terminal even under output capture and ``-q``."""
    plugins = config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(text)
