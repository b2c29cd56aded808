"""The one error tree of summary-exporter.

Every error the library raises on purpose is an ``ExporterError``; each also
subclasses the fitting built-in so existing ``except ValueError`` handlers keep
working::

    ExporterError
    ├── ShardError (ValueError)            a shard file is not what the format says
    │   ├── ShardFormatError               not a zip / not a shard / bad metadata
    │   ├── ShardVersionError              a major format version this reader does not know
    │   └── ShardFieldError                a field has the wrong shape, dtype or values
    ├── ShardTooLargeError (MemoryError)   a shard declares more data than the reader allows
    ├── RunNotFoundError (FileNotFoundError)  no shard folder / no shards where asked
    ├── RenderError (ValueError)           inputs the renderer cannot draw
    ├── ConfigError (ValueError)           an option or argument that cannot work
    ├── DatasetError (ValueError)          a dataset to import (COCO json, its images) is incomplete or malformed
    ├── WriterError (RuntimeError)         the background shard writer failed
    ├── NothingExportedError (RuntimeError)  every shard was bad: no event file was written
    └── MissingDependencyError (ImportError)  an optional extra is not installed

The command line catches ``ExporterError`` and prints ``error: <message>``.
"""

from __future__ import annotations


class ExporterError(Exception):
    """Base class of every error summary-exporter raises on purpose."""


class ShardError(ExporterError, ValueError):
    """A shard file does not follow the shard format; the message names the file."""

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None):
        self.path = path
        self.field = field
        prefix = ""
        if path is not None:
            prefix += f"{path}: "
        if field is not None:
            prefix += f"field '{field}': "
        super().__init__(prefix + message)
        self.reason = message


class ShardFormatError(ShardError):
    """The file is not a readable shard (broken zip, no metadata, pickled arrays...)."""


class ShardVersionError(ShardError):
    """The shard was written with a major format version this reader does not know."""


class ShardFieldError(ShardError):
    """A field has the wrong shape, dtype or values."""


class ShardTooLargeError(ExporterError, MemoryError):
    """A shard declares arrays larger than the reader's limit."""


class RunNotFoundError(ExporterError, FileNotFoundError):
    """No shards where they were asked for."""


class RenderError(ExporterError, ValueError):
    """Inputs that the renderer cannot draw."""


class ConfigError(ExporterError, ValueError):
    """An option or argument that cannot work."""


class DatasetError(ExporterError, ValueError):
    """A dataset to import (``exporter.coco``) has a missing file or a malformed entry; the message names it."""


class WriterError(ExporterError, RuntimeError):
    """The background shard writer failed; the original error is chained."""


class NothingExportedError(ExporterError, RuntimeError):
    """``export`` with ``skip_bad`` could read no shard at all, so it wrote nothing; ``bad`` lists them."""

    def __init__(self, message: str, *, bad: list | None = None):
        super().__init__(message)
        self.bad = list(bad or [])


class MissingDependencyError(ExporterError, ImportError):
    """An optional dependency is missing; the message names the pip extra."""


def require(module: str, extra: str):
    """Import ``module`` or raise MissingDependencyError naming ``pip install 'summary-exporter[extra]'``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is needed for this feature: pip install 'summary-exporter[{extra}]'"
        ) from exc
