"""``ShardWriter``: the framework-free writer behind every capture path.

The caller's thread only slices and copies what is kept; concatenation and disk
I/O happen on one background thread behind a bounded queue, so an eval loop
never waits on the disk and memory stays bounded.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import math
import os
import queue
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ._checks import check_bool, check_choice, check_int, check_names, check_optional_int, check_type
from .errors import ConfigError, OutputError, WriterError
from .manifest import Manifest
from .odapi import to_canonical
from .schema import (
    BOX_COORDS,
    BOX_FORMATS,
    DEFAULT_BOX_COORDS,
    DEFAULT_BOX_FORMAT,
    IMAGE_LAYOUTS,
    BoxCoords,
    BoxFormat,
    ImageLayout,
    ShardMeta,
    meta_from_mapping,
    step_dirname,
)
from .shards import as_field_array, new_dump_id, write_shard

log = logging.getLogger(__name__)

_STOP = object()


ON_ERROR = ("raise", "drop")


@dataclasses.dataclass(frozen=True)
class WriterConfig:
    """What every dump of a writer says about its data and how it is written; checked on construction.

    ``ShardWriter``, ``EvalDumpHook`` and ``EvalDumpCallback`` take these as
    keywords and build one ``WriterConfig``, so a bad option fails in their
    constructor (ConfigError), never in the middle of an evaluation.

    * ``class_names`` / ``mask_class_names``: id → name of ``labels``/boxes and of ``masks``.
    * ``box_format``, ``box_coords``: how ``boxes``/``gt_boxes`` are written (see ``schema``).
    * ``image_layout``, ``image_range``: how to read ``images`` when it cannot be guessed.
    * ``max_examples``: stop keeping examples after this many (None: keep all).
    * ``examples_per_shard``, ``max_shard_bytes``: when a shard is cut.
    * ``compress``: deflate the zip members (smaller, slower).
    * ``meta``: JSON-serialisable user metadata stored in every shard.
    * ``queue_size``: shards waiting for the writer thread before ``add`` blocks (bounded memory).
    * ``on_error``: ``"raise"`` a ``WriterError`` from the next call, or ``"drop"``: log, count, go on.

    >>> WriterConfig(box_format="xyxy", box_coords="pixels").box_format
    'xyxy'
    """

    class_names: Sequence[str] | None = None
    mask_class_names: Sequence[str] | None = None
    box_format: BoxFormat = DEFAULT_BOX_FORMAT
    box_coords: BoxCoords = DEFAULT_BOX_COORDS
    image_layout: ImageLayout | None = None
    image_range: tuple[float, float] | None = None
    max_examples: int | None = None
    examples_per_shard: int = 256
    max_shard_bytes: int = 64 << 20
    compress: bool = False
    meta: Mapping[str, Any] | None = None
    queue_size: int = 2
    on_error: Literal["raise", "drop"] = "raise"

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)  # frozen: normalised values go in this way
        for name in ("class_names", "mask_class_names"):
            if getattr(self, name) is not None:
                set_(name, check_names(getattr(self, name), name))
        check_choice(self.box_format, BOX_FORMATS, "box_format")
        check_choice(self.box_coords, BOX_COORDS, "box_coords")
        if self.image_layout is not None:
            check_choice(self.image_layout, IMAGE_LAYOUTS, "image_layout")
        if self.image_range is not None:
            set_("image_range", _value_range(self.image_range))
        check_optional_int(self.max_examples, "max_examples", minimum=0)
        check_int(self.examples_per_shard, "examples_per_shard", minimum=1)
        check_int(self.max_shard_bytes, "max_shard_bytes", minimum=1)
        check_bool(self.compress, "compress")
        set_("meta", meta_from_mapping(self.meta))
        check_int(self.queue_size, "queue_size", minimum=1)
        check_choice(self.on_error, ON_ERROR, "on_error")

    def shard_meta(self, *, step: int, dump_id: str, sources: Mapping[str, str | None]) -> dict[str, Any]:
        """The ``ShardMeta`` fields every shard of one dump shares."""
        return dict(
            step=step,
            dump_id=dump_id,
            class_names=None if self.class_names is None else list(self.class_names),
            mask_class_names=None if self.mask_class_names is None else list(self.mask_class_names),
            box_format=self.box_format,
            box_coords=self.box_coords,
            image_layout=self.image_layout,
            image_range=None if self.image_range is None else list(self.image_range),
            sources=dict(sources),
            user=dict(self.meta or {}),
        )


def _value_range(value: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"image_range must be (low, high), got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(f"image_range (low, high) must be finite with low < high, got {value!r}")
    return lo, hi


class ShardWriter:
    """Write batch-major arrays as shards of one dump (one global step).

    Shards land in ``directory/step-<step>/<dump_id>-<index>.npz``; every writer
    gets a fresh ``dump_id``, so evaluating the same checkpoint twice never
    mixes or overwrites an earlier dump (readers use the newest dump by default).

    >>> with ShardWriter("eval_shards", step=1000, class_names=["cat", "dog"]) as w:  # doctest: +SKIP
    ...     for images, labels, probs in batches:
    ...         w.add(images=images, labels=labels, probs=probs, pred_labels=probs.argmax(1))

    The keywords are those of ``WriterConfig`` (or pass ``config=`` one);
    ``sources`` records where each field came from (the capture hooks fill it).
    ``add()`` also takes an Object Detection API dict as it comes
    (``detection_boxes``, 1-based ``detection_classes``, ...; see ``exporter.odapi``).

    ``on_error="raise"`` (default) raises ``WriterError`` from the next ``add``
    or ``close`` after a failed write; ``on_error="drop"`` logs, counts the lost
    examples in ``dropped`` and goes on.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        step: int = 0,
        config: WriterConfig | None = None,
        sources: Mapping[str, str | None] | None = None,
        **options: Any,
    ):
        self.step = check_int(step, "step", minimum=0)
        self.config = config = writer_config(config, options)
        self.directory = Path(directory)
        self.dump_id = new_dump_id()
        self.step_dir = self.directory / step_dirname(self.step)
        self.max_examples = config.max_examples
        self.examples_per_shard = config.examples_per_shard
        self.max_shard_bytes = config.max_shard_bytes
        self.compress = config.compress
        self.on_error = config.on_error
        self._meta_template = config.shard_meta(step=self.step, dump_id=self.dump_id, sources=sources or {})
        self.seen = 0  # examples offered to add()
        self.kept = 0  # examples accepted (<= max_examples)
        self.written = 0  # examples in shards on disk
        self.dropped = 0  # examples lost to write errors under on_error="drop"
        self.paths: list[Path] = []
        self._pending: list[tuple[dict[str, np.ndarray], bool]] = []  # (chunk, ours: False while a view of the caller's)
        self._folder: tuple[int, int] | None = None  # (st_dev, st_ino) of step_dir once the first shard made it
        self._folder_fd: int | None = None  # step_dir held open, see _check_folder
        self._pending_n = 0
        self._pending_bytes = 0
        self._signature: tuple | None = None
        self._shard_index = 0
        self._error: BaseException | None = None
        self._closed = False
        self._queue: queue.Queue = queue.Queue(maxsize=config.queue_size)
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
        kept = {name: a[:k] for name, a in arrays.items()}  # views: copied shard by shard below
        # Text width may differ per batch (concatenate widens it); any other shape/dtype change starts a shard.
        signature = tuple(
            sorted((name, a.shape[1:], "U" if a.dtype.kind == "U" else a.dtype.str) for name, a in kept.items())
        )
        if self._signature is not None and signature != self._signature:
            self._flush()  # a shard holds one shape per field: new image size → new shard
        self._signature = signature
        self._pending.append((kept, not copy))
        self._pending_n += k
        self._pending_bytes += sum(a.nbytes for a in kept.values())
        self.kept += k
        try:
            shard = self._shard_size(kept)
            while self._pending_n >= shard:
                self._flush(shard)
            if self._pending_bytes >= self.max_shard_bytes:
                self._flush()
        finally:
            self._keep_pending()  # what waits for the next add() is copied now: callers reuse their buffers
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
        try:
            self._raise_pending_error()
            if self.paths:
                self._write_manifest()
        finally:
            fd, self._folder_fd = self._folder_fd, None
            if fd is not None:
                os.close(fd)

    def __enter__(self) -> ShardWriter:
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

    def _shard_size(self, chunk: Mapping[str, np.ndarray]) -> int:
        """Examples per shard for rows like ``chunk``'s: ``examples_per_shard``, fewer if they pass ``max_shard_bytes``."""
        row = sum(a.itemsize * math.prod(a.shape[1:]) for a in chunk.values())
        return max(1, min(self.examples_per_shard, self.max_shard_bytes // max(row, 1)))

    def _keep_pending(self) -> None:
        """Copy the pending views of the caller's arrays (after ``add`` returns, the caller may write to them)."""
        self._pending = [(c if mine else {k: np.array(v) for k, v in c.items()}, True) for c, mine in self._pending]

    def _flush(self, limit: int | None = None) -> None:
        """Hand up to ``limit`` pending examples to the writer thread as one shard.

        Views of the caller's arrays are copied here, one shard at a time, so a
        huge ``add()`` never needs a second copy of the whole batch: memory is
        the caller's batch plus the shards in the queue.
        """
        if not self._pending_n:
            return
        take = self._pending_n if limit is None else min(limit, self._pending_n)
        chunks, rest, got = [], [], 0
        for chunk, mine in self._pending:
            m = len(next(iter(chunk.values())))
            if got >= take:
                rest.append((chunk, mine))
                continue
            if got + m <= take:
                piece = chunk
                got += m
            else:
                cut = take - got
                piece = {k: v[:cut] for k, v in chunk.items()}
                rest.append(({k: v[cut:] for k, v in chunk.items()}, mine))
                got = take
            chunks.append(piece if mine else {k: np.array(v) for k, v in piece.items()})
        self._pending = rest
        self._pending_n -= take
        self._pending_bytes = sum(a.nbytes for c, _ in rest for a in c.values())
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
                self._check_folder()
                # chunks go straight into the members: no concatenated copy competing with the eval for CPU
                self.paths.append(write_shard(self.step_dir, meta, chunks, compress=self.compress, create=False))
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

    def _check_folder(self) -> None:
        """Make the step folder for the first shard; later, refuse to write when it is gone or was replaced.

        Creating it again would report success while the shards written before
        are gone with the old folder (someone removed the run, a cleanup job ran).
        The folder is held open, so a new one of the same name cannot reuse its
        inode number and pass for it.
        """
        if self._folder is None:
            self.step_dir.mkdir(parents=True, exist_ok=True)
            try:
                self._folder_fd = os.open(self.step_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
                st = os.fstat(self._folder_fd)
            except OSError:  # a platform that cannot open folders: compare by name and inode only
                st = os.stat(self.step_dir)
            self._folder = (st.st_dev, st.st_ino)
            return
        try:
            st = os.stat(self.step_dir)
        except FileNotFoundError:
            what = "removed"
        else:
            if (st.st_dev, st.st_ino) == self._folder:
                return
            what = "replaced by another folder"
        raise OutputError(
            f"the step folder {self.step_dir} was {what} while this writer wrote to it (the {len(self.paths)} "
            "shard(s) written there before went with it); not writing into a new one",
            self.step_dir, errno.ENOENT,
        )

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            exc = self._error
            raise WriterError(
                f"writing shards to {self.step_dir} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _write_manifest(self) -> None:
        """Written last, after every shard: its presence says the dump is complete (``exporter.manifest``)."""
        manifest = Manifest(
            dump_id=self.dump_id,
            step=self.step,
            shards=[p.name for p in self.paths],
            examples=self.written,
            dropped=self.dropped,
            seen=self.seen,
        )
        try:
            self._check_folder()
            manifest.write(self.step_dir)
        except OSError as exc:
            path = self.step_dir / manifest.filename
            if self.on_error == "raise":
                raise WriterError(f"writing the dump manifest {path} failed: {exc}") from exc
            log.warning("ShardWriter: could not write the dump manifest %s: %s", path, exc)


def writer_config(config: WriterConfig | None, options: Mapping[str, Any]) -> WriterConfig:
    """``config``, or one built from keyword ``options`` (not both); unknown keywords name the known ones."""
    if config is not None:
        check_type(config, WriterConfig, "config")
        if options:
            raise ConfigError(f"pass either config= or writer options, not both (got {', '.join(sorted(options))})")
        return config
    known = {f.name for f in dataclasses.fields(WriterConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown writer option(s) {', '.join(unknown)}; the options are: {', '.join(sorted(known))}")
    return WriterConfig(**options)
