"""summary-exporter: capture eval arrays as shards, render them to TensorBoard offline.

>>> import exporter
>>> with exporter.ShardWriter("eval_shards", step=1000) as w:     # doctest: +SKIP
...     w.add(images=images, labels=labels, pred_labels=preds)
>>> exporter.open_run("eval_shards")                              # doctest: +SKIP

Importing this package loads numpy only: no TensorFlow, Keras, Pillow or
tensorboardX (the exporting functions import those when first used).
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (
    ConfigError,
    ExporterError,
    MissingDependencyError,
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
from .shards import Problem, Run, Shard, open_run, validate_shard
from .writer import ShardWriter

# Exporting needs Pillow and tensorboardX: loaded on first use, keeping `import exporter` light.
_LAZY = {
    "ExportOptions": "api",
    "export": "api",
    "inspect": "api",
    "render": "api",
    "validate": "api",
    "RenderOptions": "render",
    "Selection": "select",
    "Examples": "views",
    "compare": "views",
}
_SUBMODULES = ("api", "capture", "demo", "odapi", "render", "select", "tags", "tensorboard", "views")


def __getattr__(name: str):
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
    "Examples",
    "ExportOptions",
    "ExporterError",
    "FORMAT_VERSION",
    "MissingDependencyError",
    "Problem",
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
    "WriterError",
    "compare",
    "export",
    "inspect",
    "open_run",
    "render",
    "validate",
    "validate_shard",
]
