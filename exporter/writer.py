"""``ShardWriter``: the framework-free writer behind every capture path.

The caller's thread only slices and copies what is kept; concatenation and disk
I/O happen on one background thread behind a bounded queue, so an eval loop
never waits on the disk and memory stays bounded.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ._checks import check_choice
from .errors import ConfigError, WriterError
from .odapi import to_canonical
from .schema import (
    BOX_COORDS,
    BOX_FORMATS,
    IMAGE_LAYOUTS,
    ShardMeta,
    manifest_filename,
    meta_from_mapping,
    step_dirname,
)
from .shards import as_field_array, new_dump_id, write_shard

log = logging.getLogger(__name__)

_STOP = object()


class ShardWriter:
    """Write batch-major arrays as shards of one dump (one global step).

    Shards land in ``directory/step-<step>/<dump_id>-<index>.npz``; every writer
    gets a fresh ``dump_id``, so evaluating the same checkpoint twice never
    mixes or overwrites an earlier dump (readers use the newest dump by default).

    >>> with ShardWriter("eval_shards", step=1000, class_names=["cat", "dog"]) as w:  # doctest: +SKIP
    ...     for images, labels, probs in batches:
    ...         w.add(images=images, labels=labels, probs=probs, pred_labels=probs.argmax(1))

    ``add()`` also takes an Object Detection API dict as it comes
    (``detection_boxes``, 1-based ``detection_classes``, ...; see ``exporter.odapi``).
    ``mask_class_names`` names the class ids of ``masks``/``gt_masks`` when they differ
    from ``class_names`` (e.g. with a background class 0).

    ``on_error="raise"`` (default) raises ``WriterError`` from the next ``add``
    or ``close`` after a failed write; ``on_error="drop"`` logs, counts the lost
    examples in ``dropped`` and goes on.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        step: int = 0,
        class_names: Sequence[str] | None = None,
        mask_class_names: Sequence[str] | None = None,
        box_format: str = "yxyx",
        box_coords: str = "normalized",
        max_examples: int | None = None,
        examples_per_shard: int = 256,
        max_shard_bytes: int = 64 << 20,
        compress: bool = False,
        meta: Mapping[str, Any] | None = None,
        sources: Mapping[str, str | None] | None = None,
        image_layout: str | None = None,
        image_range: tuple[float, float] | None = None,
        queue_size: int = 2,
        on_error: str = "raise",
    ):
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ConfigError(f"step must be a non-negative integer, got {step!r}")
        if max_examples is not None and (not isinstance(max_examples, (int, np.integer)) or max_examples < 0):
            raise ConfigError(f"max_examples must be None or a non-negative integer, got {max_examples!r}")
        if not isinstance(examples_per_shard, (int, np.integer)) or examples_per_shard < 1:
            raise ConfigError(f"examples_per_shard must be a positive integer, got {examples_per_shard!r}")
        check_choice(box_format, BOX_FORMATS, "box_format")
        check_choice(box_coords, BOX_COORDS, "box_coords")
        if image_layout is not None:
            check_choice(image_layout, IMAGE_LAYOUTS, "image_layout")
        check_choice(on_error, ("raise", "drop"), "on_error")
        self.directory = Path(directory)
        self.step = int(step)
        self.dump_id = new_dump_id()
        self.step_dir = self.directory / step_dirname(self.step)
        self.max_examples = max_examples
        self.examples_per_shard = int(examples_per_shard)
        self.max_shard_bytes = max_shard_bytes
        self.compress = compress
        self.on_error = on_error
        self._meta_template = dict(
            step=self.step,
            dump_id=self.dump_id,
            class_names=list(class_names) if class_names is not None else None,
            mask_class_names=list(mask_class_names) if mask_class_names is not None else None,
            box_format=box_format,
            box_coords=box_coords,
            image_layout=image_layout,
            image_range=[float(v) for v in image_range] if image_range is not None else None,
            sources=dict(sources or {}),
            user=meta_from_mapping(meta),
        )
        self.seen = 0  # examples offered to add()
        self.kept = 0  # examples accepted (<= max_examples)
        self.written = 0  # examples in shards on disk
        self.dropped = 0  # examples lost to write errors under on_error="drop"
        self.paths: list[Path] = []
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_n = 0
        self._pending_bytes = 0
        self._signature: tuple | None = None
        self._shard_index = 0
        self._error: BaseException | None = None
        self._closed = False
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self._thread = threading.Thread(target=self._run, name=f"ShardWriter-{self.dump_id}", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- public

    def add(self, **fields: Any) -> int:
        """Add one batch (every field batch-major, same N). Returns how many examples were kept."""
        return self.add_batch(fields)

    def add_batch(self, fields: Mapping[str, Any], *, copy: bool = True) -> int:
        """``add`` with the fields as a mapping. ``copy=False`` keeps views of the caller's arrays:
        only for arrays nobody writes to afterwards (such as fresh ``session.run`` results)."""
        self._raise_pending_error()
        if self._closed:
            raise ConfigError("add() on a closed ShardWriter")
        if not fields:
            raise ConfigError("add() needs at least one field, e.g. add(images=..., labels=...)")
        fields = to_canonical(fields)  # an Object Detection API dict is accepted as it comes
        arrays = {name: as_field_array(name, value) for name, value in fields.items()}
        sizes = {name: a.shape[0] for name, a in arrays.items()}
        n = next(iter(sizes.values()))
        if len(set(sizes.values())) != 1:
            raise ConfigError(f"all fields of one add() need the same batch size N, got {sizes}")
        self.seen += n
        k = n if self.max_examples is None else max(0, min(n, self.max_examples - self.kept))
        if k == 0:
            return 0
        # Copy only what is kept: callers may reuse their buffers after add() returns.
        kept = {name: np.array(a[:k]) if copy else a[:k] for name, a in arrays.items()}
        # Text width may differ per batch (concatenate widens it); any other shape/dtype change starts a shard.
        signature = tuple(
            sorted((name, a.shape[1:], "U" if a.dtype.kind == "U" else a.dtype.str) for name, a in kept.items())
        )
        if self._signature is not None and signature != self._signature:
            self._flush()  # a shard holds one shape per field: new image size → new shard
        self._signature = signature
        self._pending.append(kept)
        self._pending_n += k
        self._pending_bytes += sum(a.nbytes for a in kept.values())
        self.kept += k
        while self._pending_n >= self.examples_per_shard:
            self._flush(self.examples_per_shard)
        if self._pending_bytes >= self.max_shard_bytes:
            self._flush()
        return k

    @property
    def full(self) -> bool:
        """True once ``max_examples`` examples were kept: callers can stop fetching."""
        return self.max_examples is not None and self.kept >= self.max_examples

    def close(self) -> None:
        """Write what is pending, wait for the thread, write the dump manifest; raise a deferred error."""
        if self._closed:
            self._raise_pending_error()
            return
        try:
            if self._error is None:
                self._flush()
        finally:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()
        self._raise_pending_error()
        if self.paths:
            self._write_manifest()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except Exception:  # the body's exception is the one the user needs to see
            log.exception("ShardWriter.close() failed while handling another error")

    def __repr__(self) -> str:
        return (
            f"ShardWriter('{self.step_dir}', dump_id='{self.dump_id}', kept={self.kept}, "
            f"written={self.written}, shards={len(self.paths)})"
        )

    # ---------------------------------------------------------------- internals

    def _flush(self, limit: int | None = None) -> None:
        """Hand up to ``limit`` pending examples to the writer thread as one shard."""
        if not self._pending_n:
            return
        take = self._pending_n if limit is None else min(limit, self._pending_n)
        chunks, rest, got = [], [], 0
        for chunk in self._pending:
            m = len(next(iter(chunk.values())))
            if got >= take:
                rest.append(chunk)
            elif got + m <= take:
                chunks.append(chunk)
                got += m
            else:
                cut = take - got
                chunks.append({k: v[:cut] for k, v in chunk.items()})
                rest.append({k: v[cut:] for k, v in chunk.items()})
                got = take
        self._pending = rest
        self._pending_n -= take
        self._pending_bytes = sum(a.nbytes for c in rest for a in c.values())
        meta = ShardMeta(shard_index=self._shard_index, num_examples=take, **self._meta_template)
        self._shard_index += 1
        self._queue.put((meta, chunks))  # blocks when the queue is full: bounded memory

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            meta, chunks = item
            if self._error is not None:
                continue  # drain so the producer never blocks; the error is raised there
            try:
                # chunks go straight into the members: no concatenated copy competing with the eval for CPU
                self.paths.append(write_shard(self.step_dir, meta, chunks, compress=self.compress))
                self.written += meta.num_examples
            except BaseException as exc:  # noqa: BLE001 - surfaced on the caller's thread
                if self.on_error == "drop":
                    self.dropped += meta.num_examples
                    log.warning(
                        "ShardWriter: dropped shard %d of step %d (%d examples): %s",
                        meta.shard_index, meta.step, meta.num_examples, exc,
                    )
                else:
                    self._error = exc

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            exc = self._error
            raise WriterError(
                f"writing shards to {self.step_dir} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _write_manifest(self) -> None:
        """A small JSON next to the shards saying the dump was closed, and what it holds."""
        manifest = {
            "dump_id": self.dump_id,
            "step": self.step,
            "shards": [p.name for p in self.paths],
            "examples": self.written,
            "dropped": self.dropped,
            "seen": self.seen,
        }
        path = self.step_dir / manifest_filename(self.dump_id)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(manifest, sort_keys=True))
            os.replace(tmp, path)
        except OSError as exc:
            if self.on_error == "raise":
                raise WriterError(f"writing the dump manifest {path} failed: {exc}") from exc
            log.warning("ShardWriter: could not write the dump manifest %s: %s", path, exc)
