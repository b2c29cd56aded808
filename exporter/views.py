"""The old name of ``exporter.examples`` (the notebook API), kept so existing notebooks still import."""

from .examples import Examples, Run, compare, open_run

__all__ = ["Examples", "Run", "compare", "open_run"]
