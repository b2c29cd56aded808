"""summary-exporter: capture eval arrays as shards, render them to TensorBoard offline.

>>> import exporter
>>> with exporter.ShardWriter("eval_shards", step=1000) as w:     # doctest: +SKIP
...     w.add(images=images, labels=labels, pred_labels=preds)
>>> exporter.open_run("eval_shards")                              # doctest: +SKIP

Importing this package loads numpy only: no TensorFlow, Keras, Pillow or
tensorboardX (the exporting functions import those when first used).
"""

from __future__ import annotations

from ._version import __version__

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
from .schema import BOX_COORDS, BOX_FORMATS, CANONICAL_FIELDS, FORMAT_VERSION
from .shards import Problem, Shard
from .validation import validate_shard
from .writer import ShardWriter, WriterConfig

# Exporting needs Pillow and tensorboardX: loaded on first use, keeping `import exporter` light.
_LAZY = {
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
    "api", "capture", "coco", "demo", "examples", "manifest", "metrics", "odapi", "options", "render", "schema", "select",
    "shards", "tags", "tensorboard", "validation", "views", "writer",
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
