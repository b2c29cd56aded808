"""``EvalDumpCallback``: shards from Keras 3 (and tf.keras 2.15) evaluations.

Keras callbacks never see batch inputs or outputs (``on_test_batch_end`` gets
metric logs only), so the callback keeps its own bounded sample of the
validation data it was given and, when an evaluation ends, runs the model on
that sample and dumps the results. ``on_test_end`` fires both for
``model.evaluate`` and for the validation pass of ``model.fit(validation_data=...)``,
so one callback covers both.

Step of each dump (``step=``): ``"iterations"`` (default) is the optimizer's
iteration count, the Keras analogue of the global step, increasing across fit
and evaluate; ``"epoch"`` is the number of epochs finished in this ``fit``
(1 after the first epoch; in a standalone ``evaluate``, the last epoch this
callback saw, 0 before any ``fit``).

This module imports Keras; nothing else in the package does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import keras
import numpy as np

from .._checks import check_choice, check_int
from ..errors import ConfigError
from ..odapi import to_canonical
from ..storage import locate
from ..writer import ShardWriter, WriterConfig, writer_config

FieldsFn = Callable[[Any, Any, Any], Mapping[str, Any]]


def _to_numpy(value: Any) -> Any:
    """Tensors of any backend (and nested dicts/lists of them) → numpy."""
    if isinstance(value, Mapping):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_numpy(v) for v in value)
    ops = getattr(keras, "ops", None)
    if ops is not None and hasattr(ops, "convert_to_numpy") and not isinstance(value, np.ndarray):
        return ops.convert_to_numpy(value)
    return np.asarray(value)


def default_fields(x: Any, y: Any, y_pred: Any) -> dict[str, np.ndarray]:
    """Fields for a softmax classifier: images from x, labels from y, probs/pred_labels/pred_scores from y_pred.

    ``x`` may be an array or a dict (the entry named "images", else the first 3-d/4-d array);
    ``y`` may be class ids (N,) / (N,1) or one-hot (N,K); ``y_pred`` must be (N,K) probabilities
    (pass ``fields_fn=`` for logits, detectors or anything else).
    """
    if isinstance(x, Mapping):
        if "images" in x:
            images = x["images"]
        else:
            images = next((v for v in x.values() if np.ndim(v) in (3, 4)), None)
            if images is None:
                raise ConfigError("default_fields: no 3-d/4-d image array in the input dict; pass fields_fn=")
    else:
        images = x
    if isinstance(y_pred, (Mapping, list, tuple)):
        raise ConfigError("default_fields handles single-output classifiers; pass fields_fn= for multi-output models")
    probs = np.asarray(y_pred, dtype=np.float32)
    if probs.ndim != 2:
        raise ConfigError(f"default_fields expects (N, K) class probabilities, got shape {probs.shape}; pass fields_fn=")
    fields = {"images": images, "probs": probs, "pred_labels": probs.argmax(1), "pred_scores": probs.max(1)}
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] > 1:
            y = y.argmax(1)  # one-hot
        fields["labels"] = y.reshape(len(y)).astype(np.int64)
    return fields


class EvalDumpCallback(keras.callbacks.Callback):
    """Dump model outputs on a bounded sample of validation data whenever an evaluation ends.

    >>> cb = EvalDumpCallback("eval_shards", (x_val, y_val), class_names=names, max_examples=256)  # doctest: +SKIP
    >>> model.fit(x, y, validation_data=(x_val, y_val), callbacks=[cb])                           # doctest: +SKIP
    >>> model.evaluate(x_val, y_val, callbacks=[cb])                                              # doctest: +SKIP

    ``data``: ``(x, y)`` arrays, ``x`` alone, a ``tf.data.Dataset`` or any iterable of
    ``(x, y[, sample_weight])`` batches. The first ``max_examples`` examples are taken once and
    reused, so every dump shows the same examples (ids ``0..max_examples-1`` in that order).
    ``fields_fn(x, y, y_pred) -> {field: array}`` maps a batch to canonical fields; the default
    suits softmax classifiers. ``writer_options`` are those of ``exporter.WriterConfig``
    (``class_names``, ``box_format``, ``on_error``...), checked here. An Object Detection API style output dict is mapped by
    ``exporter.odapi.to_canonical`` when ``fields_fn`` returns one. ``directory`` may be an fsspec
    URL (``s3://evals/run1``) with ``storage_options`` for its file system (see ``ShardWriter``).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        data: Any,
        *,
        fields_fn: FieldsFn | None = None,
        max_examples: int = 256,
        batch_size: int = 32,
        step: str = "iterations",
        every_n_evals: int = 1,
        config: WriterConfig | None = None,
        storage_options: Mapping[str, Any] | None = None,
        **writer_options: Any,
    ):
        super().__init__()
        check_choice(step, ("iterations", "epoch"), "step")
        self.max_examples = check_int(max_examples, "max_examples", minimum=1)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.every_n_evals = check_int(every_n_evals, "every_n_evals", minimum=1)
        if fields_fn is not None and not callable(fields_fn):
            raise ConfigError(f"fields_fn must be a function (x, y, y_pred) -> fields, got {fields_fn!r}")
        if "max_examples" in writer_options:  # ours is the sample size: the writer keeps all of it
            raise ConfigError("max_examples is EvalDumpCallback's own option (the sample size), not a writer option")
        # every writer option is checked now, not at the end of the first evaluation
        self.config = writer_config(config, writer_options)
        self.directory = directory
        self.location = locate(directory, storage_options)  # a URL's scheme is checked now, not at the first dump
        self.data = data
        self.fields_fn = fields_fn or default_fields
        self.step_mode = step
        self._sample: list[tuple[Any, Any]] | None = None
        self._epoch = 0
        self._evals = 0
        self.writers: list[ShardWriter] = []

    # -------------------------------------------------------------- Keras hooks

    def on_epoch_begin(self, epoch, logs=None):
        # fit's validation pass runs before on_epoch_end: it belongs to the epoch being finished
        self._epoch = epoch + 1

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_test_end(self, logs=None):
        self._evals += 1
        if (self._evals - 1) % self.every_n_evals:
            return
        self.dump(self._current_step())

    # -------------------------------------------------------------- public

    def dump(self, step: int) -> ShardWriter:
        """Run the model on the sample and write one dump at ``step`` (also callable by hand)."""
        writer = ShardWriter(self.location, step=step, config=self.config)
        self.writers.append(writer)
        offset = 0
        with writer:
            for x, y in self._get_sample():
                y_pred = _to_numpy(self.model(x, training=False))
                fields = dict(to_canonical(self.fields_fn(x, y, y_pred)))
                n = len(next(iter(fields.values())))
                fields.setdefault("ids", np.arange(offset, offset + n))
                offset += n
                writer.add(**{k: _to_numpy(v) for k, v in fields.items()})
        return writer

    # -------------------------------------------------------------- internals

    def _current_step(self) -> int:
        if self.step_mode == "epoch":
            return self._epoch
        optimizer = getattr(self.model, "optimizer", None)
        iterations = getattr(optimizer, "iterations", None)
        if iterations is None:
            raise ConfigError("step='iterations' needs a compiled model with an optimizer; use step='epoch'")
        return int(_to_numpy(iterations))

    def _get_sample(self) -> list[tuple[Any, Any]]:
        """The first ``max_examples`` examples of ``data`` as numpy batches, taken once."""
        if self._sample is None:
            self._sample = list(_take(self.data, self.max_examples, self.batch_size))
            if not self._sample:
                raise ConfigError("EvalDumpCallback: the data given holds no examples")
        return self._sample


def _split(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, tuple) and 1 <= len(batch) <= 3:
        return batch[0], batch[1] if len(batch) > 1 else None
    return batch, None


def _len(x: Any) -> int:
    if isinstance(x, Mapping):
        return len(next(iter(x.values())))
    return len(x)


def _slice(x: Any, sl: slice) -> Any:
    if x is None:
        return None
    if isinstance(x, Mapping):
        return {k: v[sl] for k, v in x.items()}
    return x[sl]


def _take(data: Any, limit: int, batch_size: int) -> Iterable[tuple[Any, Any]]:
    """Yield (x, y) numpy batches holding at most ``limit`` examples in all."""
    if isinstance(data, tuple) and data and not hasattr(data[0], "__next__") and isinstance(
        data[0], (np.ndarray, Mapping, list)
    ):
        x, y = _split(data)
        x, y = _to_numpy(x), _to_numpy(y) if y is not None else None
        n = min(limit, _len(x))
        for start in range(0, n, batch_size):
            sl = slice(start, min(n, start + batch_size))
            yield _slice(x, sl), _slice(y, sl)
        return
    if isinstance(data, (np.ndarray, Mapping)):
        yield from _take((data,), limit, batch_size)
        return
    taken = 0
    for batch in data:
        x, y = _split(batch)
        x = _to_numpy(x)
        y = _to_numpy(y) if y is not None else None
        n = min(_len(x), limit - taken)
        yield _slice(x, slice(0, n)), _slice(y, slice(0, n))
        taken += n
        if taken >= limit:
            return
