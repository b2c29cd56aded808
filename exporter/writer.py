"""``ShardWriter``: the framework-free writer behind every capture path.

The caller's thread only slices and copies what is kept; concatenation and disk
I/O happen on one background thread behind a bounded queue, so an eval loop
never waits on the disk (or the network) and memory stays bounded.

The folder may be a local path or any fsspec URL (``s3://bucket/evals/run1``):
on a store each shard is written to a local temp file and uploaded whole under
its final key (``shards.upload_shard``), the manifest last.
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

from ._checks import (
    check_bool,
    check_choice,
    check_int,
    check_names,
    check_optional_int,
    check_range,
    check_type,
    is_int,
)
from .errors import ConfigError, OutputError, WriterError
from .manifest import Manifest
from .odapi import to_canonical
from .schema import (
    BOX_COORDS,
    BOX_FORMATS,
    BOX_GROUPS,
    CANONICAL_FIELDS,
    DEFAULT_BOX_COORDS,
    DEFAULT_BOX_FORMAT,
    DEFAULT_MASK_BACKGROUND,
    IMAGE_LAYOUTS,
    BoxCoords,
    BoxFormat,
    ImageLayout,
    ShardMeta,
    meta_from_mapping,
    step_dirname,
)
from .shards import as_array, as_field_array, new_dump_id, upload_shard, write_shard
from .storage import DEFAULT_RETRY, Location, RetryPolicy, locate
from .validation import check_arrays

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
    * ``mask_background``: the ``masks`` id meaning "no class" (default 0; None: every id is a class).
    * ``keypoint_names``, ``keypoint_edges``: what the P keypoints of a box are, and which pairs are joined.
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
    mask_background: int | None = DEFAULT_MASK_BACKGROUND
    keypoint_names: Sequence[str] | None = None
    keypoint_edges: Sequence[Sequence[int]] | None = None
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
        for name in ("class_names", "mask_class_names", "keypoint_names"):
            if getattr(self, name) is not None:
                set_(name, check_names(getattr(self, name), name))
        check_optional_int(self.mask_background, "mask_background")
        if self.keypoint_edges is not None:
            set_("keypoint_edges", _keypoint_edges(self.keypoint_edges, self.keypoint_names))
        check_choice(self.box_format, BOX_FORMATS, "box_format")
        check_choice(self.box_coords, BOX_COORDS, "box_coords")
        if self.image_layout is not None:
            check_choice(self.image_layout, IMAGE_LAYOUTS, "image_layout")
        if self.image_range is not None:
            set_("image_range", check_range(self.image_range, "image_range"))
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
            mask_background=None if self.mask_background is None else int(self.mask_background),
            keypoint_names=None if self.keypoint_names is None else list(self.keypoint_names),
            keypoint_edges=None if self.keypoint_edges is None else [list(e) for e in self.keypoint_edges],
            box_format=self.box_format,
            box_coords=self.box_coords,
            image_layout=self.image_layout,
            image_range=None if self.image_range is None else list(self.image_range),
            sources=dict(sources),
            user=dict(self.meta or {}),
        )


def _keypoint_edges(value: Any, names: Sequence[str] | None) -> tuple[tuple[int, int], ...]:
    """``[[a, b], ...]`` keypoint index pairs as a tuple of int pairs, within ``names`` when given."""
    try:
        edges = tuple((a, b) for a, b in value)
    except (TypeError, ValueError):
        raise ConfigError(f"keypoint_edges must be a list of [a, b] keypoint index pairs, got {value!r}") from None
    if isinstance(value, str) or not all(is_int(i) and 0 <= i < 2**31 for e in edges for i in e):
        raise ConfigError(f"keypoint_edges must be a list of [a, b] pairs of keypoint indices >= 0, got {value!r}")
    if names is not None and any(max(e) >= len(names) for e in edges):
        raise ConfigError(f"keypoint_edges {value!r} joins a keypoint beyond the {len(names)} keypoint_names")
    return tuple((int(a), int(b)) for a, b in edges)


class ShardWriter:
    """Write batch-major arrays as shards of one dump (one global step).

    Shards land in ``directory/step-<step>/<dump_id>-<index>.npz``; every writer
    gets a fresh ``dump_id``, so evaluating the same checkpoint twice never
    mixes or overwrites an earlier dump (readers use the newest dump by default).

    >>> with ShardWriter("eval_shards", step=1000, class_names=["cat", "dog"]) as w:  # doctest: +SKIP
    ...     for images, labels, probs in batches:
    ...         w.add(images=images, labels=labels, probs=probs, pred_labels=probs.argmax(1))

    ``directory`` may be an fsspec URL (``s3://evals/run1``, ``gs://...``), with
    ``storage_options`` for its file system (credentials come from the
    environment, never from here): each shard is uploaded whole, retried under
    ``retry`` (``storage.RetryPolicy``), and a store that stays down is a
    ``WriterError`` naming the URL (or, with ``on_error="drop"``, counted
    drops). A scheme fsspec does not know is refused here, never made a local
    folder named ``s3:``.

    The keywords are those of ``WriterConfig`` (or pass ``config=`` one);
    ``sources`` records where each field came from (the capture hooks fill it).
    ``add()`` also takes an Object Detection API dict as it comes
    (``detection_boxes``, 1-based ``detection_classes``, ...; see ``exporter.odapi``),
    and detections the way detection code holds them: a list of per-image
    arrays for ``boxes`` ((Mᵢ, 4) each), ``box_labels``, ``box_scores``,
    ``instance_masks``, ``keypoints``, ``keypoint_scores`` (and ``gt_*``
    alike) is padded to the batch's largest Mᵢ, with ``num_boxes`` /
    ``gt_num_boxes`` filled in::

        w.add(images=images, boxes=[b0, b1], box_labels=[l0, l1], box_scores=[s0, s1])

    What ``export`` would refuse (class ids beyond the class names, negative
    mask ids, inverted boxes...) is logged as a warning, once per field; it
    never raises, so a doubtful batch never stops an evaluation.

    ``on_error="raise"`` (default) raises ``WriterError`` from the next ``add``
    or ``close`` after a failed write; ``on_error="drop"`` logs, counts the lost
    examples in ``dropped`` and goes on.
    """

    def __init__(
        self,
        directory: str | os.PathLike | Location,
        *,
        step: int = 0,
        config: WriterConfig | None = None,
        sources: Mapping[str, str | None] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        **options: Any,
    ):
        self.step = check_int(step, "step", minimum=0)
        self.config = config = writer_config(config, options)
        self.location = locate(directory, storage_options)  # an unknown scheme is refused here
        self.retry = check_type(retry, RetryPolicy, "retry")
        #: A local run folder is a Path (today's code path), a URL's is its Location.
        self.directory: Path | Location = Path(self.location.path) if self.location.is_local else self.location
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
        self.paths: list[Path | Location] = []
        self._pending: list[tuple[dict[str, np.ndarray], bool]] = []  # (chunk, ours: False while a view of the caller's)
        self._folder: tuple[int, int] | None = None  # (st_dev, st_ino) of a local step_dir once the first shard made it
        self._folder_fd: int | None = None  # step_dir held open, see _check_folder
        self._pending_n = 0
        self._pending_bytes = 0
        self._signature: tuple | None = None
        self._shard_index = 0
        self._check_meta = ShardMeta(shard_index=0, num_examples=0, **self._meta_template)
        self._warned: set[str | None] = set()  # fields already warned about
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
        fields = pad_ragged(fields)  # per-image lists of boxes, labels, masks... as detection code holds them
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
        self._warn_once(kept, k)
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

    def _warn_once(self, arrays: dict[str, np.ndarray], n: int) -> None:
        """Log what validation would refuse in this batch, once per field; never raise (the eval must go on)."""
        try:
            problems = check_arrays(dataclasses.replace(self._check_meta, num_examples=n), arrays)
        except Exception as exc:  # noqa: BLE001 - a check that fails must not stop the evaluation
            problems = [(None, f"could not be checked ({type(exc).__name__}: {exc})")]
        for field, message in problems:
            if field in self._warned:
                continue
            self._warned.add(field)
            what = f"field '{field}'" if field else "a batch"
            log.warning(
                "ShardWriter(%s): %s %s; validate and export will refuse shards holding it "
                "(warned once per field)",
                self.step_dir, what, message,
            )

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
                self.paths.append(self._write_shard(meta, chunks))
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
        inode number and pass for it. A folder of an object store is only a
        prefix of keys: nothing to check there.
        """
        if not isinstance(self.step_dir, Path):
            return
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

    def _write_shard(self, meta: ShardMeta, chunks: list[dict[str, np.ndarray]]) -> Path | Location:
        """One shard, whole: atomically into a local folder, or uploaded under its final key."""
        if isinstance(self.step_dir, Path):  # made by _check_folder, never made again
            return write_shard(self.step_dir, meta, chunks, compress=self.compress, create=False)
        return upload_shard(self.step_dir, meta, chunks, compress=self.compress, retry=self.retry)

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


#: What the writer pads a per-image list with: padding rows are never drawn or counted (beyond num_boxes).
_PAD_VALUES = {"box_labels": -1, "gt_box_labels": -1, "keypoints": np.nan, "gt_keypoints": np.nan}
#: What one image without boxes is, when it comes as ``[]``: a row shape and dtype for each field kind.
_EMPTY_ROWS = {
    "box": ((4,), np.float32),
    "point": ((0, 2), np.float32),
    "float": ((0,), np.float32),  # keypoint_scores; box_scores has no trailing dims (rank 2)
    "binary": ((0, 0), np.bool_),
    "int": ((), np.int64),
}


def pad_ragged(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Per-image lists of the box fields → batch-major arrays padded to the batch's largest box count.

    A list (or tuple) given for a box field (``schema.BOX_GROUPS``: ``boxes``,
    ``box_labels``, ``box_scores``, ``instance_masks``, ``keypoints``,
    ``keypoint_scores``, and the ``gt_*`` ones) holds one array per image, Mᵢ
    rows each. All fields of one group pad to the same M: labels with -1,
    keypoints with NaN, the rest with 0. The count field (``num_boxes``,
    ``gt_num_boxes``) is filled with the Mᵢ; one the caller gives is kept, and
    may be smaller (rows beyond it are padding the caller made).

    >>> out = pad_ragged({"boxes": [np.ones((2, 4)), np.ones((0, 4))], "box_labels": [[3, 1], []]})
    >>> out["boxes"].shape, out["box_labels"].tolist(), out["num_boxes"].tolist()
    ((2, 2, 4), [[3, 1], [-1, -1]], [2, 0])
    """
    out = dict(fields)
    for boxes, (count, parallel) in BOX_GROUPS.items():
        group = [name for name in (boxes, *parallel) if isinstance(fields.get(name), (list, tuple))]
        if not group:
            continue
        dense = [name for name in (boxes, *parallel) if name in fields and name not in group]
        if dense:
            raise ConfigError(
                f"field '{group[0]}' is a list of per-image arrays, so '{dense[0]}' must be one too "
                f"(got {type(fields[dense[0]]).__name__}); give every field of the group the same way"
            )
        per_image = {name: [_row_array(name, i, v) for i, v in enumerate(fields[name])] for name in group}
        sizes = {name: [len(a) for a in arrays] for name, arrays in per_image.items()}
        first = group[0]
        for name in group[1:]:
            if sizes[name] != sizes[first]:
                raise ConfigError(
                    f"fields '{first}' and '{name}' must hold as many rows per image, got {sizes[first]} and {sizes[name]}"
                )
        lengths = sizes[first]
        m = max(lengths, default=0)
        for name, arrays in per_image.items():
            out[name] = _pad(name, arrays, m)
        if fields.get(count) is None:
            out[count] = np.array(lengths, dtype=np.int32)
        else:
            given = as_array(count, fields[count])
            if given.shape != (len(lengths),) or np.any(given > np.array(lengths)):
                raise ConfigError(
                    f"field '{count}' {given.tolist()} does not fit '{first}', whose images hold {lengths} rows"
                )
    return out


def _row_array(name: str, index: int, value: Any) -> np.ndarray:
    """One image's rows of a box field, with the rank the field has without its batch axis."""
    spec = CANONICAL_FIELDS[name]
    rank = spec.ranks[0] - 1
    if isinstance(value, (list, tuple)) and not value:  # an image without boxes
        trailing, dtype = _EMPTY_ROWS[spec.kind]
        return np.zeros((0, *trailing[: rank - 1]), dtype=dtype)
    arr = as_array(f"{name}[{index}]", value)
    if arr.ndim == rank + 1 and spec.kind == "binary" and arr.shape[1] == 1:
        arr = arr[:, 0]  # (M, 1, H, W), as Mask R-CNN returns them
    if arr.ndim != rank:
        raise ConfigError(
            f"field '{name}' is a list of per-image arrays, each with {rank} dims "
            f"({spec.doc} without N), but item {index} has shape {arr.shape}"
        )
    return arr


def _pad(name: str, arrays: list[np.ndarray], m: int) -> np.ndarray:
    """Stack per-image rows into (N, m, ...), padding each image's rows beyond its own count."""
    spec = CANONICAL_FIELDS[name]
    filled = [a for a in arrays if len(a)]
    pool = filled or arrays
    shapes = {a.shape[1:] for a in pool}
    if not filled:  # no image has a row: any row shape will do, the largest keeps (H, W) of empty masks
        shapes = {max(shapes, default=_EMPTY_ROWS[spec.kind][0][: spec.ranks[0] - 2])}
    if len(shapes) > 1:
        raise ConfigError(f"field '{name}': the per-image arrays differ beyond their row count: {sorted(shapes)}")
    dtype = np.result_type(*pool) if pool else np.dtype(_EMPTY_ROWS[spec.kind][1])
    pad = _PAD_VALUES.get(name, 0)
    if isinstance(pad, float):
        dtype = np.result_type(dtype, np.float32)  # NaN needs floats
    elif pad == -1 and dtype.kind in "ub":
        dtype = np.result_type(dtype, np.int8)
    out = np.full((len(arrays), m, *shapes.pop()), pad, dtype=dtype)
    for i, a in enumerate(arrays):
        if len(a):
            out[i, : len(a)] = a
    return out


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
