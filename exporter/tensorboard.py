"""Rendered images and numbers → TensorBoard event files (tensorboardX, no TensorFlow).

Two pieces, both free of drawing:

* ``encode_image`` turns a rendered image into PNG or JPEG bytes (PNG through
  ``exporter.png``'s numpy writer by default, ISA-L-accelerated when ``isal``
  is installed; Pillow and fpng on request);
* ``EventWriter`` writes pre-encoded images, scalars, PR curves and Markdown
  text as events with an explicit step and wall time.

TensorBoard drops ("purges") events written after an older step arrives, so an
``EventWriter`` refuses a step older than one it already wrote: callers order
their work by step.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import io
import json
import os
import secrets
import shlex
import socket
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import png
from ._files import STAGING_PREFIX, atomic_write, fsync_dir, move_into_place
from ._procs import fault_point
from .errors import ConfigError, MissingDependencyError, OutputError
from .tags import sanitize

#: Suffix of every event file this package writes; how ``export`` recognises its own files.
EVENT_FILE_SUFFIX = ".summary-exporter"
EVENT_FILE_GLOB = "events.out.tfevents.*" + EVENT_FILE_SUFFIX

#: How many samples per tag TensorBoard keeps unless ``--samples_per_plugin`` says otherwise.
TENSORBOARD_SAMPLES = {"images": 10, "pr_curves": 100, "scalars": 1000, "text": 10}

IMAGE_FORMATS = ("png", "jpeg")
PNG_ENCODERS = ("auto", "numpy", "pillow", "fpng")
PR_CURVE_THRESHOLDS = 127  # tensorboardX's (and TensorBoard's) maximum
#: ``SummaryMetadata.data_class = DATA_CLASS_BLOB_SEQUENCE`` as wire bytes (field 4, varint 3).
_BLOB_SEQUENCE_DATA_CLASS = b"\x20\x03"


# --------------------------------------------------------------------------- encoding


@functools.lru_cache(maxsize=1)
def _fpng() -> Any:
    """The ``fpng`` module, or None when it is not installed (or cannot load on this CPU)."""
    try:
        import fpng
    except Exception:  # noqa: BLE001 - an optional accelerator must never break export
        return None
    return fpng


def fpng_available() -> bool:
    return _fpng() is not None


def png_encoder_name(encoder: str = "auto") -> str:
    """The PNG encoder ``encoder`` resolves to: ``"numpy"`` (what ``"auto"`` picks), ``"pillow"`` or ``"fpng"``.

    ``"auto"`` never picks fpng: the numpy writer with ``isal`` is within 1.4x
    of it on a whole export, for smaller files, from a maintained package with
    wheels on every platform (README, "Speed and memory").
    """
    if encoder not in PNG_ENCODERS:
        raise ConfigError(f"png encoder must be one of {', '.join(PNG_ENCODERS)}, got {encoder!r}")
    if encoder == "auto":
        return "numpy"
    if encoder == "fpng" and not fpng_available():
        raise MissingDependencyError("fpng is needed for png_encoder='fpng': pip install 'summary-exporter[fpng]'")
    return encoder


def png_encoder_description(encoder: str = "auto") -> str:
    """What ``encoder`` means on this machine, for reports: e.g. ``"numpy Sub filter + isal level 1"``."""
    name = png_encoder_name(encoder)
    if name == "numpy":
        return "numpy Sub filter + " + ("isal level 1" if png.deflate_name() == "isal" else "zlib level 1 RLE")
    return {"pillow": "Pillow, zlib level 1 RLE, adaptive filters", "fpng": "fpng"}[name]


def _as_pil(image: Any):
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ConfigError(
            f"encode_image takes a PIL image or a uint8 (H, W), (H, W, 1|3|4) array, "
            f"but got {arr.dtype} {arr.shape}; render it first (exporter.render)"
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(arr))


def encode_image(image: Any, fmt: str = "png", quality: int = 90, *, png_encoder: str = "auto") -> bytes:
    """Encode a PIL image or uint8 array as PNG or JPEG bytes; PNG is always lossless.

    PNG (``png_encoder``):

    * ``"auto"`` / ``"numpy"``: ``exporter.png`` (Sub filter, one deflate call,
      through ``isal`` when installed, else ``zlib``): 3x (9x with isal) faster
      than Pillow, files 4-9 % larger. PIL images in modes other than L, LA, RGB
      and RGBA (palette, 16-bit, CMYK...) go to Pillow, which keeps them exact;
    * ``"pillow"``: Pillow at ``compress_level=1`` with zlib's RLE strategy;
    * ``"fpng"``: fpng (the ``fpng`` extra), RGB or RGBA only: grey comes back RGB.

    JPEG always uses Pillow at ``quality``.

    >>> data = encode_image(np.zeros((4, 6, 3), np.uint8))
    >>> data[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    if fmt not in IMAGE_FORMATS:
        raise ConfigError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
    encoder = png_encoder_name(png_encoder) if fmt == "png" else None
    if encoder == "numpy":
        pixels = _numpy_pixels(image)
        if pixels is not None:
            return png.encode_png(pixels)
    img = _as_pil(image)
    buf = io.BytesIO()
    if fmt == "jpeg":
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        img.save(buf, format="JPEG", quality=int(quality))
        return buf.getvalue()
    if encoder == "fpng":
        if img.mode not in ("RGB", "RGBA"):  # fpng writes 24- or 32-bit pixels only
            img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
        return _fpng().from_ndarray(np.ascontiguousarray(np.asarray(img)))
    # zlib's run-length strategy: a third faster than level 1 alone, and on photos as small as level 6
    img.save(buf, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    return buf.getvalue()


_NUMPY_MODES = ("L", "LA", "RGB", "RGBA")  # 8 bits per sample: exactly what exporter.png writes


def _numpy_pixels(image: Any) -> np.ndarray | None:
    """The uint8 pixels ``exporter.png`` encodes exactly, or None for a PIL mode only Pillow keeps exact."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return np.asarray(image) if image.mode in _NUMPY_MODES else None
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        _as_pil(arr)  # raises the one message for what cannot be encoded
    return arr


def image_colorspace(image: Any) -> int:
    """TensorBoard's colorspace code of a PIL image: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA."""
    return {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}.get(_as_pil(image).mode, 3)


# --------------------------------------------------------------------------- PR curves


class PRCurveCounts:
    """Per-class precision-recall counts accumulated batch by batch (bounded memory).

    The buckets are those of ``tensorboardX.summary.compute_curve`` (TensorBoard's
    own definition), summed over batches, so the curve equals ``add_pr_curve``
    called once on every example of the step.
    """

    def __init__(self, num_thresholds: int = PR_CURVE_THRESHOLDS):
        if not 2 <= num_thresholds <= PR_CURVE_THRESHOLDS:
            raise ConfigError(f"num_thresholds must be in 2..{PR_CURVE_THRESHOLDS}, got {num_thresholds}")
        self.num_thresholds = num_thresholds
        self.tp = np.zeros((0, num_thresholds), np.float64)
        self.fp = np.zeros((0, num_thresholds), np.float64)

    @property
    def num_classes(self) -> int:
        return self.tp.shape[0]

    def add(self, probs: np.ndarray, labels: np.ndarray) -> None:
        """Add (N, K) probabilities and (N,) true class ids; scores outside [0, 1] are clipped."""
        probs = np.asarray(probs, np.float64)
        labels = np.asarray(labels).astype(np.int64, copy=False)
        if probs.ndim != 2 or labels.shape != probs.shape[:1]:
            raise ConfigError(f"probs must be (N, K) and labels (N,), but got {probs.shape} and {labels.shape}")
        k = probs.shape[1]
        if k > self.num_classes:
            grow = ((0, k - self.num_classes), (0, 0))
            self.tp, self.fp = np.pad(self.tp, grow), np.pad(self.fp, grow)
        t = self.num_thresholds
        buckets = np.floor(np.clip(np.nan_to_num(probs), 0.0, 1.0) * (t - 1)).astype(np.int64)
        positive = labels[:, None] == np.arange(k)[None, :]
        flat = buckets + np.arange(k)[None, :] * t  # one histogram per class, in one bincount
        self.tp[:k] += np.bincount(flat[positive], minlength=k * t).reshape(k, t)
        self.fp[:k] += np.bincount(flat[~positive], minlength=k * t).reshape(k, t)

    def curve(self, k: int) -> np.ndarray:
        """(6, T) rows tp, fp, tn, fn, precision, recall of class ``k`` (TensorBoard's layout)."""
        tp = np.cumsum(self.tp[k, ::-1])[::-1]
        fp = np.cumsum(self.fp[k, ::-1])[::-1]
        tn = fp[0] - fp
        fn = tp[0] - tp
        precision = tp / np.maximum(1e-7, tp + fp)
        recall = tp / np.maximum(1e-7, tp + fn)
        return np.stack((tp, fp, tn, fn, precision, recall))


class PRCurves(Protocol):
    """What ``EventWriter.add_pr_curves`` reads: ``PRCurveCounts``, or any per-class curves (detection's)."""

    @property
    def num_classes(self) -> int: ...

    num_thresholds: int

    def curve(self, k: int) -> np.ndarray: ...


# --------------------------------------------------------------------------- events


def tensorboard_command(logdir: str | os.PathLike, samples_needed: Mapping[str, int] | None = None) -> str:
    """The command that shows ``logdir``, with ``--samples_per_plugin`` when some tag holds more than the default."""
    command = "tensorboard --logdir " + shlex.quote(str(logdir))
    if samples_needed:
        command += " --samples_per_plugin " + ",".join(f"{k}={v}" for k, v in sorted(samples_needed.items()))
    return command


def next_event_file_name(logdir: Path) -> str:
    """A name that sorts after every event file of ours already in ``logdir``.

    TensorBoard reads a run's event files in name order and never goes back to
    an earlier name, so an appended file must sort last, and a rewritten run
    must not reuse a name a live TensorBoard has already read (second-resolution
    time stamps alone collide).
    """
    stamp, seq = int(time.time()), 0
    for old in logdir.glob(EVENT_FILE_GLOB):
        parts = old.name.split(".")
        if len(parts) > 4 and parts[3].isdigit():
            old_seq = int(parts[-2]) if parts[-2].isdigit() else 0
            if int(parts[3]) > stamp or (int(parts[3]) == stamp and old_seq >= seq):
                stamp, seq = max(stamp, int(parts[3])), old_seq + 1
    host = sanitize(socket.gethostname() or "host").replace(".", "_")
    return f"events.out.tfevents.{stamp:010d}.{host}.{seq:04d}{EVENT_FILE_SUFFIX}"


JOURNAL_FILE = ".summary-exporter-journal.json"


@dataclasses.dataclass(frozen=True)
class Installation:
    """The journal of one event-file installation: what moves in, what goes, which small files follow.

    Written (fsynced) before anything in the logdir changes and removed last;
    ``apply`` is idempotent, so replaying it after a crash finishes the job.
    Order: old event files removed, the staged file renamed in, the small
    files written. A viewer never sees two copies of the run; a crash in the
    middle leaves the run partly missing until the next export completes it.
    """

    staging: str  # names inside the logdir
    final: str
    remove: list[str]
    files: dict[str, str]

    def write(self, logdir: Path) -> None:
        atomic_write(logdir / JOURNAL_FILE, json.dumps(dataclasses.asdict(self), sort_keys=True))

    @classmethod
    def read(cls, logdir: Path) -> Installation | None:
        """The journal an installation left, or None; an unreadable one is reported and dropped."""
        path = logdir / JOURNAL_FILE
        try:
            data = json.loads(path.read_text())
            plan = cls(
                staging=str(data["staging"]), final=str(data["final"]),
                remove=[str(n) for n in data["remove"]], files={str(k): str(v) for k, v in data["files"].items()},
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise OutputError(f"{path}: unreadable installation journal ({exc}); remove it to go on", path) from None
        for name in [plan.staging, plan.final, *plan.remove, *plan.files]:
            if Path(name).name != name or name in ("", ".", ".."):  # a journal names files of this folder only
                raise OutputError(f"{path}: installation journal names {name!r}, not a file of {logdir}", path)
        return plan

    def apply(self, logdir: Path) -> None:
        """Do (or finish) the installation; safe to run again after any crash inside it."""
        for name in self.remove:
            try:
                (logdir / name).unlink()
            except FileNotFoundError:
                pass
            fault_point("install:old-removed")
        staged = logdir / self.staging
        if staged.exists():
            move_into_place(staged, logdir / self.final)
        elif not (logdir / self.final).exists():
            raise OutputError(f"{logdir}: the staged event file {self.staging} is gone", logdir / self.staging)
        fault_point("install:renamed")
        for name, text in self.files.items():
            atomic_write(logdir / name, text)
            fault_point("install:file-written")
        try:
            (logdir / JOURNAL_FILE).unlink()
        except FileNotFoundError:
            pass
        fsync_dir(logdir)


def recover_installation(logdir: str | os.PathLike) -> str | None:
    """Finish an installation a killed export left in ``logdir`` (call it holding the logdir's lock).

    Returns a note for the user when there was one; rolls back (drops the
    journal) when its staged file never finished, so nothing had moved yet.
    """
    logdir = Path(logdir)
    plan = Installation.read(logdir)
    if plan is None:
        return None
    if not (logdir / plan.staging).exists() and not (logdir / plan.final).exists():
        (logdir / JOURNAL_FILE).unlink()
        return f"{logdir}: an interrupted export had not moved anything yet; its journal was dropped"
    plan.apply(logdir)
    return f"{logdir}: finished installing {plan.final}, which an interrupted export had left half done"


class EventWriter:
    """Write one new event file for ``logdir``, step by step in ascending order, and install it whole.

    The writer owns its file from open to install: events go to a hidden staging
    file inside ``logdir`` (its name holds no ``tfevents``, so TensorBoard never
    reads it, and the final rename never crosses file systems), and
    ``install()`` moves it under a name from ``next_event_file_name``, removing
    the event files of earlier exports unless appending. A writer closed
    without ``install()`` removes its staging file. Writes go straight to the
    file on the caller's thread, so a full disk raises here.

    >>> with EventWriter("tb/eval") as w:                                        # doctest: +SKIP
    ...     w.add_image("examples/cat1", encode_image(img), height=224, width=224, step=100, walltime=t)
    ...     w.add_scalar("metrics/accuracy", 0.91, step=100, walltime=t)
    ...     event_file = w.install()
    """

    def __init__(self, logdir: str | os.PathLike):
        from tensorboardX.proto import event_pb2
        from tensorboardX.record_writer import RecordWriter

        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.staging = self.logdir / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.path: Path | None = None  # the installed file
        self.last_step: int | None = None
        self.counts: dict[str, collections.Counter] = {p: collections.Counter() for p in TENSORBOARD_SAMPLES}
        self.events = 0
        self._closed = True
        try:
            self._records = RecordWriter(str(self.staging))
        except OSError as exc:
            raise self._write_error(exc) from exc
        self._closed = False
        header = event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
        self._record(header.SerializeToString())

    # ---------------------------------------------------------------- records

    def _event(self, step: int, walltime: float | None) -> Any:
        """A new, empty event at ``step`` (checked: open writer, ascending steps), for the caller to fill."""
        from tensorboardX.proto import event_pb2

        if self._closed:
            raise ConfigError(f"{self.path or self.staging}: the event writer is closed")
        step = int(step)
        if self.last_step is not None and step < self.last_step:
            raise ConfigError(
                f"{self.logdir}: step {step} written after step {self.last_step}; TensorBoard would drop the "
                "newer events, so write steps in ascending order"
            )
        self.last_step = step
        return event_pb2.Event(step=step, wall_time=time.time() if walltime is None else float(walltime))

    def _write(self, event: Any) -> None:
        self._record(event.SerializeToString())
        self.events += 1

    def _record(self, data: bytes) -> None:
        try:
            self._records.write(data)
        except OSError as exc:
            raise self._write_error(exc) from exc

    def _write_error(self, exc: OSError) -> OutputError:
        """A write error of tensorboardX's RecordWriter (which names no file) as one line naming ``logdir``."""
        reason = exc.strerror or str(exc) or type(exc).__name__
        return OutputError(f"{reason}: cannot write events to {self.logdir}", self.staging, exc.errno, exc.strerror)

    def _add(self, summary: Any, step: int, walltime: float | None) -> None:
        event = self._event(step, walltime)
        event.summary.CopyFrom(summary)
        self._write(event)

    def add_image(
        self,
        tag: str,
        encoded: bytes,
        *,
        height: int,
        width: int,
        step: int,
        walltime: float | None = None,
        colorspace: int = 3,
        description: str | None = None,
    ) -> None:
        """One pre-encoded PNG/JPEG under ``tag`` at ``step``.

        ``description`` (Markdown) is the text TensorBoard shows on the tag's card; it
        is written with the tag's first event of this file only (TensorBoard reads a
        tag's metadata from its first event).
        """
        event = self._event(step, walltime)
        # filled in place: the encoded bytes are copied once, not once more per enclosing message
        value = event.summary.value.add(tag=tag)
        if description and not self.counts["images"][tag]:
            value.metadata.summary_description = description
            value.metadata.plugin_data.plugin_name = "images"
            # TensorBoard's Rust data server keeps a legacy image's metadata (and so its description) only when
            # it names its data class; tensorboardX's proto predates the field (4, DATA_CLASS_BLOB_SEQUENCE = 3)
            value.metadata.MergeFromString(_BLOB_SEQUENCE_DATA_CLASS)
        image = value.image
        image.height, image.width, image.colorspace = int(height), int(width), int(colorspace)
        image.encoded_image_string = bytes(encoded)
        self._write(event)
        self.counts["images"][tag] += 1

    def add_scalar(self, tag: str, value: float, *, step: int, walltime: float | None = None) -> None:
        from tensorboardX.proto.summary_pb2 import Summary

        self._add(Summary(value=[Summary.Value(tag=tag, simple_value=float(value))]), step, walltime)
        self.counts["scalars"][tag] += 1

    def add_text(
        self, tag: str, markdown: str, *, step: int, walltime: float | None = None, description: str | None = None
    ) -> None:
        """Markdown under ``tag`` at ``step``, for TensorBoard's text plugin (tables render as tables).

        The proto is tensorboardX's ``summary.text`` (a string tensor with plugin data
        ``text``, version 0) with two differences: the tensor is a scalar, as
        ``tf.summary.text`` writes one string (the text plugin draws a 1-element
        tensor as a one-cell table around the Markdown), and the tag is kept as
        given (tensorboardX's ``add_text`` appends ``/text_summary``).
        """
        from tensorboardX.proto.plugin_text_pb2 import TextPluginData
        from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboardX.proto.tensor_pb2 import TensorProto
        from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto

        if not isinstance(markdown, str):
            raise ConfigError(f"text for '{tag}' must be a str, got {type(markdown).__name__}")
        plugin = SummaryMetadata.PluginData(plugin_name="text", content=TextPluginData(version=0).SerializeToString())
        metadata = SummaryMetadata(plugin_data=plugin)
        if description and not self.counts["text"][tag]:
            metadata.summary_description = description
        tensor = TensorProto(dtype="DT_STRING", string_val=[markdown.encode("utf-8")], tensor_shape=TensorShapeProto())
        self._add(Summary(value=[Summary.Value(tag=tag, metadata=metadata, tensor=tensor)]), step, walltime)
        self.counts["text"][tag] += 1

    def add_pr_curve(
        self,
        tag: str,
        labels: np.ndarray,
        predictions: np.ndarray,
        *,
        step: int,
        walltime: float | None = None,
        num_thresholds: int = PR_CURVE_THRESHOLDS,
    ) -> None:
        """A PR curve from binary ``labels`` and ``predictions`` in [0, 1] (tensorboardX's ``pr_curve``)."""
        from tensorboardX.summary import pr_curve

        summary = pr_curve(tag, np.asarray(labels), np.asarray(predictions, np.float64), num_thresholds)
        self._add(summary, step, walltime)
        self.counts["pr_curves"][tag] += 1

    def add_pr_curves(
        self, tags: Sequence[str], counts: PRCurves, *, step: int, walltime: float | None = None
    ) -> None:
        """One PR curve per class from accumulated counts; ``tags[k]`` names class ``k``."""
        from tensorboardX.summary import pr_curve_raw

        for k in range(min(len(tags), counts.num_classes)):
            tp, fp, tn, fn, precision, recall = counts.curve(k)
            summary = pr_curve_raw(tags[k], tp, fp, tn, fn, precision, recall, counts.num_thresholds)
            self._add(summary, step, walltime)
            self.counts["pr_curves"][tags[k]] += 1

    # ---------------------------------------------------------------- reporting

    def samples_needed(self) -> dict[str, int]:
        """Plugins whose busiest tag holds more samples than TensorBoard keeps by default: ``{plugin: N}``."""
        need = {}
        for plugin, counter in self.counts.items():
            most = max(counter.values(), default=0)
            if most > TENSORBOARD_SAMPLES[plugin]:
                need[plugin] = most
        return need

    def sample_warnings(self) -> list[str]:
        """One message per plugin where TensorBoard would show only a sample of what was written."""
        out = []
        for plugin, n in self.samples_needed().items():
            counter = self.counts[plugin]
            over = [t for t, c in counter.items() if c > TENSORBOARD_SAMPLES[plugin]]
            out.append(
                f"{len(over)} {plugin} tag(s) hold up to {n} samples (e.g. '{sorted(over)[0]}'), but TensorBoard "
                f"shows only {TENSORBOARD_SAMPLES[plugin]} per tag by default: start it with "
                f"--samples_per_plugin {plugin}={n}"
            )
        return out

    @property
    def tags(self) -> set[str]:
        return {t for counter in self.counts.values() for t in counter}

    # ---------------------------------------------------------------- lifetime

    def flush(self) -> None:
        try:
            self._records.flush()
        except OSError as exc:
            raise self._write_error(exc) from exc

    def install(self, *, replace: bool = True, also: Mapping[str, str] | None = None) -> Path:
        """Close the file and move it into ``logdir`` under its final name; unless appending, drop older ones.

        ``also`` maps small files of ``logdir`` (the export state) to the text
        they get once the event file is in place. The steps are journaled
        (``Installation``): a process killed at any point leaves a journal that
        the next export's ``recover_installation`` completes, so ``logdir`` ends
        in the new state with every event exactly once, never two copies.
        """
        if self.path is not None:
            raise ConfigError(f"{self.path}: this event file was installed already")
        self._close_file(fsync=True)
        final = next_event_file_name(self.logdir)
        old = sorted(p.name for p in self.logdir.glob(EVENT_FILE_GLOB) if p.name != final) if replace else []
        plan = Installation(staging=self.staging.name, final=final, remove=old, files=dict(also or {}))
        plan.write(self.logdir)
        fault_point("install:journal-written")
        plan.apply(self.logdir)
        self.path = self.logdir / final
        return self.path

    def _close_file(self, *, fsync: bool) -> None:
        if not self._closed:
            self._closed = True
            try:
                if fsync:
                    self._records.flush()  # tensorboardX's flush fsyncs a local file
                self._records.close()
            except OSError as exc:
                try:
                    self._records.close()  # the descriptor, whatever the buffer's fate
                except OSError:
                    pass
                raise self._write_error(exc) from exc

    def close(self) -> None:
        """Close; a file never installed is removed (a failed export leaves nothing behind)."""
        if self.path is None:
            try:
                self._close_file(fsync=False)
            except OutputError:
                pass  # the file is discarded: what did not fit (a full disk) does not matter now
            try:
                self.staging.unlink()
            except FileNotFoundError:
                pass
        else:
            self._close_file(fsync=False)

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventWriter('{self.path or self.staging}', events={self.events}, last_step={self.last_step})"
