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
    ├── OutputError (OSError)              the output folder or a file in it cannot be written;
    │   │                                  the message names the path, errno/filename are kept
    │   └── LogdirBusyError (BlockingIOError)  another summary-exporter holds the output folder's lock
    ├── MissingDependencyError (ImportError)  an optional extra is not installed
    ├── StorageError (OSError)             a remote store kept failing (or refused); names the URL and the cause
    └── ClusterError (ConnectionError)     the Dask scheduler cannot be reached or started

The command line catches ``ExporterError`` and prints ``error: <message>``.
"""

from __future__ import annotations

import os


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


class OutputError(ExporterError, OSError):
    """Writing the output failed; ``str()`` is one line naming the path, ``errno``/``filename`` are kept.

    >>> str(OutputError("No space left on device: /tb/run/x", "/tb/run/x", errno=28))
    'No space left on device: /tb/run/x'

    It is an ``OSError`` but not, say, a ``PermissionError``: test ``exc.errno``.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, errno: int | None = None,
                 strerror: str | None = None):
        super().__init__(errno, strerror or message, None if path is None else os.fspath(path))
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        # OSError pickles as (errno, strerror, filename), which is not this constructor: workers send errors back.
        return (type(self), (self.message, self.filename, self.errno, self.strerror), self.__dict__)


class LogdirBusyError(OutputError, BlockingIOError):
    """Another summary-exporter holds the lock of the output folder; ``owner`` says who, when known."""

    def __init__(self, message: str, path: str | os.PathLike | None = None, errno: int | None = None,
                 strerror: str | None = None, *, owner: object = None):
        super().__init__(message, path, errno, strerror)
        self.owner = owner


class MissingDependencyError(ExporterError, ImportError):
    """An optional dependency is missing; the message names the pip extra."""


class StorageError(ExporterError, OSError):
    """A remote store failed: transient errors past the retry budget, or one that retrying cannot fix.

    ``str()`` is one line naming the URL (never credentials), the tries and the
    cause; ``url`` and ``attempts`` are kept.

    >>> str(StorageError("upload to s3://evals/a.npz failed after 3 tries in 9.8 s: EndpointConnectionError: ...", "s3://evals/a.npz", 3))
    'upload to s3://evals/a.npz failed after 3 tries in 9.8 s: EndpointConnectionError: ...'
    """

    def __init__(self, message: str, url: str | None = None, attempts: int = 1):
        super().__init__(message)
        self.message = message
        self.url = url
        self.attempts = attempts

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        # OSError's own pickling passes (errno, strerror): not this constructor. Dask sends errors back.
        return (type(self), (self.message, self.url, self.attempts), self.__dict__)


class ClusterError(ExporterError, ConnectionError):
    """The Dask scheduler asked for cannot be reached, or a local cluster cannot be started."""


def require(module: str, extra: str):
    """Import ``module`` or raise MissingDependencyError naming ``pip install 'summary-exporter[extra]'``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is needed for this feature: pip install 'summary-exporter[{extra}]'"
        ) from exc
