"""``EvalDumpHook``: fetch eval arrays in a ``SessionRunHook`` and save them as shards.

No summary ops, no extra ops at all: the hook adds the requested tensors to the
fetches of the session runs the evaluation already makes, and hands the
results to a ``ShardWriter`` whose thread does the disk I/O.

Works with ``Estimator.evaluate(..., hooks=[hook])`` (tensor names),
``EstimatorSpec(..., evaluation_hooks=[hook])`` built in ``model_fn`` (tensor
objects), and any ``tf.compat.v1.train.MonitoredSession`` (also on TensorFlow
>= 2.16, which has no ``tf.estimator``). This module imports TensorFlow.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Mapping, Sequence

import tensorflow as tf

from ..errors import ConfigError
from ..schema import check_field_name
from ..writer import ShardWriter

log = logging.getLogger(__name__)

_GLOBAL_STEP_KEY = "__global_step__"


class EvalDumpHook(tf.compat.v1.train.SessionRunHook):
    """Dump the tensors of every ``every_n_steps``-th eval batch to shards, up to ``max_examples``.

    >>> hook = EvalDumpHook("eval_shards", {"images": "images:0", "labels": "labels:0",
    ...                                     "probs": "probs:0", "pred_labels": "pred_labels:0"},
    ...                     class_names=["circle", "square"], max_examples=256)   # doctest: +SKIP
    >>> estimator.evaluate(eval_input_fn, hooks=[hook])                            # doctest: +SKIP

    ``tensors`` maps canonical field names (``images``, ``labels``, ``boxes``,
    ... see the README) to tensor names or tensor objects. The shard's step is
    the graph's global step (the checkpoint's), or ``step`` when given (an int,
    or a callable returning one, for graphs without a global step).
    Eval steps dumped: 0, n, 2n, ... counted from the start of each evaluation.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        tensors: Mapping[str, Any],
        *,
        every_n_steps: int = 1,
        max_examples: int | None = None,
        class_names: Sequence[str] | None = None,
        mask_class_names: Sequence[str] | None = None,
        box_format: str = "yxyx",
        box_coords: str = "normalized",
        step: int | Callable[[], int] | None = None,
        image_layout: str | None = None,
        image_range: tuple[float, float] | None = None,
        examples_per_shard: int = 256,
        compress: bool = False,
        meta: Mapping[str, Any] | None = None,
        on_error: str = "raise",
    ):
        if not tensors:
            raise ConfigError("tensors must map at least one field name to a tensor, e.g. {'images': 'images:0'}")
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ConfigError(f"every_n_steps must be a positive integer, got {every_n_steps!r}")
        for name in tensors:
            check_field_name(name)
        self.directory = directory
        self.tensors = dict(tensors)
        self.every_n_steps = every_n_steps
        self.max_examples = max_examples
        self._step = step
        self._writer_kwargs = dict(
            class_names=class_names,
            mask_class_names=mask_class_names,
            box_format=box_format,
            box_coords=box_coords,
            max_examples=max_examples,
            examples_per_shard=examples_per_shard,
            compress=compress,
            meta=meta,
            image_layout=image_layout,
            image_range=image_range,
            on_error=on_error,
        )
        # Fail now, not after the first eval batch, on bad writer options.
        if max_examples is not None and (not isinstance(max_examples, int) or max_examples < 0):
            raise ConfigError(f"max_examples must be None or a non-negative integer, got {max_examples!r}")
        self.writer: ShardWriter | None = None
        self.writers: list[ShardWriter] = []  # one per evaluation this hook took part in

    # -------------------------------------------------------------- SessionRunHook

    def begin(self) -> None:
        graph = tf.compat.v1.get_default_graph()
        self._fetches = {name: _resolve(graph, name, t) for name, t in self.tensors.items()}
        self._sources = {name: t.name for name, t in self._fetches.items()}
        self._global_step = tf.compat.v1.train.get_global_step(graph) if self._step is None else None
        if self._step is None and self._global_step is None:
            raise ConfigError(
                "the graph has no global step: pass step=<int or callable> to EvalDumpHook "
                "(under Estimator the global step always exists)"
            )
        self._eval_step = 0
        self._done = False
        self.writer = None

    def before_run(self, run_context):
        if self._done or self._eval_step % self.every_n_steps:
            return None
        fetches = dict(self._fetches)
        if self.writer is None and self._global_step is not None:
            fetches[_GLOBAL_STEP_KEY] = self._global_step
        return tf.compat.v1.train.SessionRunArgs(fetches)

    def after_run(self, run_context, run_values) -> None:
        self._eval_step += 1
        results = run_values.results
        if not results:
            return
        results = dict(results)
        global_step = results.pop(_GLOBAL_STEP_KEY, None)
        if self.writer is None:
            step = self._step() if callable(self._step) else self._step
            if step is None:
                step = int(global_step)
            self.writer = ShardWriter(self.directory, step=int(step), sources=self._sources, **self._writer_kwargs)
            self.writers.append(self.writer)
        self.writer.add_batch(results, copy=False)  # session.run returns fresh arrays: no copy needed
        if self.writer.full:
            self._done = True  # no more fetches: the rest of the eval runs exactly as without the hook

    def end(self, session) -> None:
        if self.writer is not None:
            self.writer.close()
            log.info("EvalDumpHook: %s", self.writer)


def _resolve(graph, name: str, t: Any):
    """A tensor name ("images:0" or op name "images") or a tensor object → a tensor of ``graph``."""
    if isinstance(t, str):
        try:
            element = graph.as_graph_element(t, allow_tensor=True, allow_operation=True)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"field '{name}': no tensor named {t!r} in the graph ({exc})") from None
        if isinstance(element, tf.Operation):
            if not element.outputs:
                raise ConfigError(f"field '{name}': operation {t!r} has no outputs to fetch")
            element = element.outputs[0]
        return element
    if getattr(t, "graph", None) is not graph:
        raise ConfigError(
            f"field '{name}': tensor {getattr(t, 'name', t)!r} is not in the evaluation graph; "
            "pass its name (hooks=[...]) or create the hook inside model_fn (evaluation_hooks=[...])"
        )
    return t
