"""summary-exporter: capture eval arrays as shards, render them to TensorBoard offline.

>>> import exporter
>>> with exporter.ShardWriter("eval_shards", step=1000) as w:     # doctest: +SKIP
...     w.add(images=images, labels=labels, pred_labels=preds)
>>> exporter.open_run("eval_shards")                              # doctest: +SKIP

Importing this package loads almost nothing: numpy with the first shard
function used, Pillow and tensorboardX with the first export, and never
TensorFlow or Keras (``exporter.capture`` imports those).
"""

from __future__ import annotations

from ._version import __version__ as __version__
from .errors import (
    ConfigError,
    DatasetError,
    ExporterError,
    MissingDependencyError,
    NothingExportedError,
    RenderError,
    RunNotFoundError,
    ShardError,
    ShardFieldError,
    ShardFormatError,
    ShardTooLargeError,
    ShardVersionError,
    WriterError,
)

# Everything else loads on first use: `import exporter` costs almost nothing (a Ctrl-C at start-up
# lands in main(), not in an import), and exporting loads Pillow and tensorboardX only when used.
_LAZY = {
    "BOX_COORDS": "schema",
    "BOX_FORMATS": "schema",
    "CANONICAL_FIELDS": "schema",
    "FORMAT_VERSION": "schema",
    "Problem": "shards",
    "Shard": "shards",
    "validate_shard": "validation",
    "ShardWriter": "writer",
    "WriterConfig": "writer",
    "ExportMode": "api",
    "ExportOptions": "api",
    "export": "api",
    "inspect": "api",
    "render": "api",
    "validate": "api",
    "ReadOptions": "render",
    "RenderOptions": "render",
    "Selection": "select",
    "Examples": "examples",
    "Run": "examples",
    "compare": "examples",
    "open_run": "examples",
}
_SUBMODULES = (
    "api", "capture", "changes", "coco", "demo", "distributed", "examples", "manifest", "metrics", "odapi", "options",
    "render", "schema", "select", "shards", "storage", "tags", "tensorboard", "validation", "views", "writer",
)


def __getattr__(name: str) -> object:
    import importlib

    if name in _SUBMODULES:  # `exporter.views.compare(...)` works without importing exporter.views first
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'exporter' has no attribute {name!r}")

    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = [
    "BOX_COORDS",
    "BOX_FORMATS",
    "CANONICAL_FIELDS",
    "ConfigError",
    "DatasetError",
    "Examples",
    "ExportMode",
    "ExportOptions",
    "ExporterError",
    "FORMAT_VERSION",
    "MissingDependencyError",
    "NothingExportedError",
    "Problem",
    "ReadOptions",
    "RenderError",
    "RenderOptions",
    "Run",
    "RunNotFoundError",
    "Selection",
    "Shard",
    "ShardError",
    "ShardFieldError",
    "ShardFormatError",
    "ShardTooLargeError",
    "ShardVersionError",
    "ShardWriter",
    "WriterConfig",
    "WriterError",
    "compare",
    "export",
    "inspect",
    "open_run",
    "render",
    "validate",
    "validate_shard",
]
