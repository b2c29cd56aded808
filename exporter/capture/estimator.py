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
from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf

from .._checks import check_int
from ..errors import ConfigError
from ..schema import check_field_name
from ..storage import locate
from ..writer import ShardWriter, WriterConfig, writer_config

log = logging.getLogger(__name__)

_GLOBAL_STEP_KEY = "__global_step__"


class EvalDumpHook(tf.compat.v1.train.SessionRunHook):
    """Dump the tensors of every ``every_n_steps``-th eval batch to shards, up to ``max_examples``.

    >>> hook = EvalDumpHook("eval_shards", {"images": "images:0", "labels": "labels:0",
    ...                                     "probs": "probs:0", "pred_labels": "pred_labels:0"},
    ...                     class_names=["circle", "square"], max_examples=256)   # doctest: +SKIP
    >>> estimator.evaluate(eval_input_fn, hooks=[hook])                            # doctest: +SKIP

    ``writer_options`` are those of ``exporter.WriterConfig`` (``class_names``,
    ``box_format``, ``max_examples``, ``on_error``...), checked here.
    ``tensors`` maps canonical field names (``images``, ``labels``, ``boxes``,
    ... see the README) to tensor names or tensor objects. The shard's step is
    the graph's global step (the checkpoint's), or ``step`` when given (an int,
    or a callable returning one, for graphs without a global step).
    Eval steps dumped: 0, n, 2n, ... counted from the start of each evaluation.
    ``directory`` may be an fsspec URL (``s3://evals/run1``) with
    ``storage_options`` for its file system; each shard is then uploaded whole
    by the writer's thread (see ``ShardWriter``).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        tensors: Mapping[str, Any],
        *,
        every_n_steps: int = 1,
        step: int | Callable[[], int] | None = None,
        config: WriterConfig | None = None,
        storage_options: Mapping[str, Any] | None = None,
        **writer_options: Any,
    ):
        if not tensors:
            raise ConfigError("tensors must map at least one field name to a tensor, e.g. {'images': 'images:0'}")
        for name in tensors:
            check_field_name(name)
        self.every_n_steps = check_int(every_n_steps, "every_n_steps", minimum=1)
        if step is not None and not callable(step):
            check_int(step, "step", minimum=0)
        # every writer option is checked now, not at the first eval batch
        self.config = writer_config(config, writer_options)
        self.directory = directory
        self.location = locate(directory, storage_options)  # a URL's scheme is checked now, not at the first dump
        self.tensors = dict(tensors)
        self.max_examples = self.config.max_examples
        self._step = step
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
            self.writer = ShardWriter(self.location, step=int(step), config=self.config, sources=self._sources)
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
