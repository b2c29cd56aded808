"""``summary-exporter bench``: ratios measured side by side in one run, never absolute thresholds.

Every row divides two things measured in the same run on the same machine, on
generated data of a stated size: 224 x 224 RGB uint8 images that look like
photos to a PNG encoder (smooth colour fields, filled discs, sensor noise), 10
predicted boxes (normalised yxyx, the TensorFlow default) with class ids and
scores per image, and the 80 COCO class names. Rows (key: what ÷ what):

* ``defaults``: ``export`` with no options (``workers="auto"``, the default PNG
  encoder) on the base install (``isal`` and ``fpng`` hidden from the child)
  ÷ the usual route, a tensorboardX ``SummaryWriter.add_image_with_boxes`` loop
  over the same shards (boxes converted to pixel xyxy, labels "name score", PNG);
* ``fast``: the same with the ``fast`` extra (isal) importable ÷ the same loop;
* ``floor``: ``export`` on 1 worker ÷ the floor: encoding already-drawn images
  with the same encoder and writing them as events, on one core;
* ``scaling``: ``export`` with 2 workers ÷ 1 worker (fast encoder);
* ``hook``, ``hook/10``: ``Estimator.evaluate`` wall time with ``EvalDumpHook``
  dumping every batch (every 10th) ÷ without, on a light model (two conv
  layers, 64 x 64 images, ~20 ms per batch: the hook's cost shows most there);
  ``hook/heavy`` and ``in-graph`` (``tf.compat.v1.summary.image`` +
  ``SummarySaverHook``) ÷ without on a heavier one (8 conv layers, 224 x 224).
  A real TF 2.15 Estimator, in a child process; skipped without tensorflow_estimator;
* ``memory``: peak memory (summed PSS of the export and its workers, sampled
  from outside) of an export of >= 2 GB of shards with the default workers ÷ 400 MB;
  ``linear``: its time per image at 20k ÷ at 1k images;
* ``start``: ``summary-exporter --help`` in a fresh process ÷ 0.3 s;
* ``tb/...`` (information, no target): a real ``tensorboard`` on 127.0.0.1 over
  a logdir this tool wrote with 1,000 and 10,000 per-example tags: seconds until
  ``/data/plugin/images/tags`` lists every tag ÷ seconds until it answers at
  all, with the Rust data server (the default where its binary exists) and the
  Python loader (``--load_fast=false``);
* ``s3`` (section ``storage``): ``export`` S3 -> S3 on a ``moto_server`` started
  for the section on 127.0.0.1 ÷ local -> local, images per second, 1 worker;
  ``s3/memory``: that remote export's peak RSS ÷ 400 MB; ``dask``:
  ``export-runs`` of 8 runs on a 2-worker Dask LocalCluster (started before the
  clock) ÷ the same runs one after another; ``dask/plain`` (information): the 8
  runs as 4 + 4 in two plain processes at once ÷ one after another, what two
  processes gain on this machine without Dask. Skipped without s3fs, moto or
  distributed.

Each row shows the project's target for it and whether this run met
it; the exit status is 0 either way (the test suite asserts behaviour, never
speed). Timed samples run interleaved, each in a fresh interpreter, and the
medians are taken; a sample during which other processes used more than 10 %
of the machine's CPU is set aside and re-run while the time budget allows
(the table says how many). ``--json PATH`` writes the rows, the raw samples,
the machine and the library versions.

From the command line (``exporter.cli`` defines the flags; this module loads
only when the ``bench`` command runs)::

    summary-exporter bench --quick --json bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError

IMAGE_SIZE = 224
BOXES_PER_IMAGE = 10
RSS_LIMIT_MB = 400.0
START_LIMIT_S = 0.3
#: Bump when the generated data changes, so an old cache is not reused.
DATA_VERSION = 1
SECTIONS = ("export", "estimator", "memory", "start", "tensorboard", "storage")

COCO_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)


# --------------------------------------------------------------------------- sizes and records


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each section measures; ``FULL`` and ``QUICK`` are the two presets."""

    images: int  # export rows: images per pass, one step
    repeats: int  # export rows: interleaved passes, medians taken
    floor_images: int  # floor: already-drawn images kept in memory
    memory_steps: int  # memory: steps of the big run ...
    memory_per_step: int  # ... and images per step (the small run is its first step)
    small_repeats: int  # linear: exports of the small run (median)
    eval_batches: int  # hook/heavy: eval batches per evaluate() ...
    eval_batch_size: int  # ... of this many 224 x 224 images
    eval_repeats: int  # hook/heavy: interleaved evaluate() calls per variant (median)
    light_batches: int  # hook, hook/10: eval batches per evaluate() ...
    light_batch_size: int  # ... of this many 64 x 64 images
    light_repeats: int  # hook, hook/10: interleaved evaluate() calls per variant (median)
    start_repeats: int  # start: fresh processes (best of)
    tensorboard_tags: tuple[int, ...] = (1000, 10000)  # tb: per-example tags of each logdir
    # seconds after which disturbed samples are no longer re-run (see ``Contention``)
    export_budget_s: float = 120.0
    memory_budget_s: float = 120.0
    estimator_budget_s: float = 240.0
    storage_images: int = 1024  # s3, s3/memory: images of the run exported local -> local and S3 -> S3
    storage_run_images: int = 256  # dask: images of each of the 8 runs
    storage_repeats: int = 3  # storage rows: interleaved passes per variant (median)
    storage_budget_s: float = 120.0


FULL = Sizes(
    images=1024, repeats=3, floor_images=512, memory_steps=20, memory_per_step=1000, small_repeats=3,
    eval_batches=30, eval_batch_size=32, eval_repeats=5, light_batches=160, light_batch_size=32, light_repeats=7,
    start_repeats=7,
)
QUICK = Sizes(
    images=48, repeats=1, floor_images=24, memory_steps=4, memory_per_step=24, small_repeats=1,
    eval_batches=3, eval_batch_size=4, eval_repeats=1, light_batches=3, light_batch_size=4, light_repeats=1,
    start_repeats=3,
    export_budget_s=0.0, memory_budget_s=0.0, estimator_budget_s=0.0,
    storage_images=48, storage_run_images=16, storage_repeats=1, storage_budget_s=0.0,
)


@dataclasses.dataclass
class Row:
    """One line of the table: a ratio of two measurements of this run, and the issue's target for it."""

    key: str
    label: str
    ratio: float
    target: str  # as printed, e.g. ">= 20x"
    met: bool
    measured: str  # the two numbers behind the ratio
    note: str = ""
    info: bool = False  # a figure to know, without a target of the issue: never counted as met or missed


@dataclasses.dataclass
class Skipped:
    """A row this run could not measure, and why."""

    key: str
    label: str
    target: str
    reason: str


@dataclasses.dataclass
class Results:
    machine: dict[str, Any]
    versions: dict[str, str]
    data: str
    sizes: Sizes
    quick: bool
    rows: list[Row] = dataclasses.field(default_factory=list)
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    contention: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "summary-exporter/bench",
            "format_version": 1,
            "quick": self.quick,
            "machine": self.machine,
            "versions": self.versions,
            "data": self.data,
            "sizes": dataclasses.asdict(self.sizes),
            "rows": [dataclasses.asdict(r) for r in self.rows],
            "skipped": [dataclasses.asdict(s) for s in self.skipped],
            "contention": self.contention,
            "raw": self.raw,
            "seconds": round(self.seconds, 1),
        }


def _at_least(key: str, label: str, ratio: float, target: float, measured: str, note: str = "") -> Row:
    return Row(key, label, ratio, f">= {target:g}x", ratio >= target, measured, note)


def _at_most(key: str, label: str, ratio: float, target: float, measured: str, note: str = "") -> Row:
    return Row(key, label, ratio, f"<= {target:g}x", ratio <= target, measured, note)


# --------------------------------------------------------------------------- machine and versions

_DISTRIBUTIONS = (
    "summary-exporter", "numpy", "pillow", "isal", "tensorboardX", "protobuf", "fpng", "crc32c", "tqdm",
    "tensorflow-cpu", "tensorflow", "tensorflow-estimator", "tensorboard", "tensorboard-data-server",
)


def machine_info() -> dict[str, Any]:
    """CPU model, cores (usable by this process), RAM, OS and Python, without third-party packages."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = None
    return {
        "cpu": cpu,
        "cores": usable,
        "logical_cpus": os.cpu_count(),
        "ram_gib": round(ram / 2**30, 1) if ram else None,
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "load_start": _load_average(),
    }


def _load_average() -> float | None:
    """The 1-minute load average: other work on the machine shows up here (and in ``Contention``)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that matter here (read from metadata, nothing imported)."""
    import importlib.metadata as md

    out = {}
    for name in _DISTRIBUTIONS:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def machine_line(m: dict[str, Any]) -> str:
    ram = f"{m['ram_gib']} GiB RAM" if m.get("ram_gib") else "RAM unknown"
    return f"{m['cpu']}, {m['cores']} cores, {ram}, {m['os']}, Python {m['python']}"


# --------------------------------------------------------------------------- progress

_T0 = time.monotonic()


def _say(message: str) -> None:
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- generated data


def _smooth_field(rng: np.random.Generator, size: int, grid: int = 5) -> np.ndarray:
    """A (size, size, 3) float image bilinearly interpolated from a coarse random grid."""
    g = rng.uniform(0, 255, (grid, grid, 3))
    pos = np.linspace(0, grid - 1, size)
    i0 = np.minimum(np.floor(pos).astype(int), grid - 2)
    t = pos - i0
    rows = g[i0] * (1 - t)[:, None, None] + g[i0 + 1] * t[:, None, None]
    return rows[:, i0] * (1 - t)[None, :, None] + rows[:, i0 + 1] * t[None, :, None]


class ImagePool:
    """Photo-like 224 x 224 RGB uint8 images, deterministic per example id and cheap to make in bulk.

    A few dozen base pictures (smooth colour fields with filled discs) are
    shifted per id and get Gaussian sensor noise (sigma 6) from a shared buffer:
    to a PNG encoder they cost about what a real photo of that size costs
    (about 100 kB per PNG, where pure noise would be 150 kB and a flat colour 1 kB).
    """

    def __init__(self, seed: int = 0, pool: int = 32, size: int = IMAGE_SIZE):
        rng = np.random.default_rng(seed)
        self.size = size
        yy, xx = np.mgrid[:size, :size]
        bases = []
        for _ in range(pool):
            img = _smooth_field(rng, size)
            for _ in range(6):
                cx, cy = rng.uniform(0, size, 2)
                r = rng.uniform(size / 22, size / 4.5)
                img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
            bases.append(img.astype(np.int16))
        self.bases = np.stack(bases)
        self.noise = np.rint(rng.normal(0, 6, size * size * 3 * 8)).astype(np.int16)

    def take(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """(len(ids), H, W, 3) uint8 images for example ``ids``."""
        s = self.size
        n = s * s * 3
        out = np.empty((len(ids), s, s, 3), np.uint8)
        for j, i in enumerate(int(i) for i in ids):
            base = np.roll(self.bases[i % len(self.bases)], (i * 37) % s, axis=1)
            off = (i * 7919) % (self.noise.size - n)
            np.clip(base + self.noise[off : off + n].reshape(s, s, 3), 0, 255, out=out[j], casting="unsafe")
        return out


def detections(rng: np.random.Generator, n: int, num_classes: int = len(COCO_NAMES)) -> dict[str, np.ndarray]:
    """``BOXES_PER_IMAGE`` predicted boxes per image: normalised yxyx, class ids, scores (highest first)."""
    m = BOXES_PER_IMAGE
    y0x0 = rng.uniform(0.0, 0.75, (n, m, 2))
    hw = rng.uniform(0.08, 0.35, (n, m, 2))
    boxes = np.concatenate([y0x0, np.minimum(y0x0 + hw, 1.0)], axis=-1).astype(np.float32)
    scores = -np.sort(-rng.uniform(0.05, 1.0, (n, m)), axis=1).astype(np.float32)
    return {
        "boxes": boxes,
        "box_labels": rng.integers(0, num_classes, (n, m)).astype(np.int32),
        "box_scores": scores,
        "num_boxes": np.full(n, m, np.int32),
    }


def write_run(
    directory: Path, *, steps: int, per_step: int, pool: ImagePool, seed: int = 0, batch: int = 64,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """A run folder of ``steps`` steps (100, 200, ...) of the same ``per_step`` eval images, new boxes per step."""
    from .writer import ShardWriter

    for k in range(steps):
        step = 100 * (k + 1)
        rng = np.random.default_rng([seed, step])
        with ShardWriter(
            directory, step=step, class_names=COCO_NAMES, box_format="yxyx", box_coords="normalized",
            image_layout="HWC", image_range=(0, 255), examples_per_shard=256, meta={"bench": DATA_VERSION},
        ) as w:
            for start in range(0, per_step, batch):
                ids = np.arange(start, min(per_step, start + batch), dtype=np.int64)
                w.add(images=pool.take(ids), ids=ids, **detections(rng, len(ids)))
        if progress is not None and (k + 1) % max(1, steps // 10) == 0:
            progress(f"  wrote step {k + 1}/{steps}")
    return directory


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cached_run(cache: Path, steps: int, per_step: int) -> Path:
    """The big run for the memory rows: generated once into ``cache``, reused while its parameters match."""
    from .schema import FORMAT_VERSION

    name = f"run-v{DATA_VERSION}-shards{FORMAT_VERSION}-{steps}x{per_step}"
    folder = cache / name
    stamp = cache / f"{name}.complete.json"
    if folder.is_dir() and stamp.is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    _say(f"generating {steps} x {per_step} images into {folder} (once; reused by later runs)")
    write_run(folder, steps=steps, per_step=per_step, pool=ImagePool(seed=1), seed=1, progress=_say)
    stamp.write_text(json.dumps({"steps": steps, "per_step": per_step, "bytes": _dir_bytes(folder)}))
    return folder


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "summary-exporter" / "bench"


# --------------------------------------------------------------------------- contention (a shared machine)


def _busy_cpu_seconds() -> float | None:
    """CPU seconds every process on the machine has used since boot (Linux /proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    except (OSError, ValueError, IndexError):
        return None


def _tree_cpu_seconds() -> float:
    """CPU seconds of this process and of its children that were waited for (and theirs)."""
    try:
        import resource
    except ImportError:  # not POSIX: there is no /proc/stat either, so no contention figure
        return 0.0
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Contention:
    """The share of the machine's CPU that *other* processes used while the ``with`` body ran.

    ``share`` is None where /proc/stat is missing. A timed sample during which
    others used more than ``CONTENDED`` of the machine is set aside when
    enough clean samples exist, and re-run while the time budget allows.
    """

    def __init__(self, own_cpu: Callable[[], float] = _tree_cpu_seconds):
        self._own = own_cpu
        self.share: float | None = None

    def __enter__(self) -> Contention:
        self._busy, self._mine, self._t0 = _busy_cpu_seconds(), self._own(), time.monotonic()
        return self

    def __exit__(self, *exc: Any) -> None:
        busy, wall = _busy_cpu_seconds(), time.monotonic() - self._t0
        if busy is None or self._busy is None or wall <= 0:
            return
        others = (busy - self._busy) - (self._own() - self._mine)
        self.share = round(max(0.0, others / (wall * (os.cpu_count() or 1))), 3)


#: Samples during which other processes used more than this share of the machine are set aside.
CONTENDED = 0.10


def _clean(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples taken while the machine was otherwise quiet, or all of them when none was."""
    quiet = [s for s in samples if (s.get("others") or 0.0) <= CONTENDED]
    return quiet or samples


def _needs_more(samples: list[dict[str, Any]], wanted: int) -> bool:
    return sum((s.get("others") or 0.0) <= CONTENDED for s in samples) < wanted


def _contention_summary(groups: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    every = [s for g in groups.values() for s in g if s.get("others") is not None]
    busy = [s for s in every if s["others"] > CONTENDED]
    worst = max((s["others"] for s in every), default=None)
    return {"samples": len(every), "contended": len(busy), "others_max": worst}


# --------------------------------------------------------------------------- export throughput

#: Every row of a full run, in the table's order (a run measures each or lists it as skipped).
ROW_KEYS = (
    "defaults", "fast", "floor", "scaling", "hook", "hook/10", "hook/heavy", "in-graph", "memory", "linear",
    "start", "s3", "s3/memory", "dask", "dask/plain", "tb/1k", "tb/10k", "tb/1k/python", "tb/10k/python",
)
#: Optional accelerators a "base install" child hides from itself, as if only the required packages were there.
_EXTRAS = ("isal", "isal.isal_zlib", "fpng")


def _time_export(run_dir: Path, scratch: Path, *, png_encoder: str, workers: int | str) -> dict[str, Any]:
    """One ``export`` of ``run_dir``: images, seconds and worker count (event file removed afterwards)."""
    from .api import ExportOptions, export
    from .tensorboard import png_encoder_description

    logdir = Path(tempfile.mkdtemp(prefix="export-", dir=scratch))
    used = _workers_used(workers)
    try:
        t0 = time.perf_counter()
        options = ExportOptions(png_encoder=png_encoder, workers=workers)  # type: ignore[arg-type]  # checked there
        report = export(run_dir, logdir, options)
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    return {"images": report.images, "seconds": seconds, "encoder": png_encoder_description(png_encoder),
            "workers": used}


def _workers_used(workers: int | str) -> int:
    """The processes ``export`` will draw with, asked before it starts (threads it leaves behind would make
    ``"auto"`` answer 1 afterwards); the runs here hold far more than 32 images per core."""
    from ._pipeline import worker_count

    return worker_count(workers, 1 << 30)


def _time_usual_route(run_dir: Path, scratch: Path) -> dict[str, float]:
    """tensorboardX's own route over the same shards: ``add_image_with_boxes`` per image, default PNG."""
    from tensorboardX import SummaryWriter

    from . import tags
    from .render.boxes import to_pixel_xyxy_keep
    from .shards import open_run

    logdir = Path(tempfile.mkdtemp(prefix="tbx-", dir=scratch))
    images = 0
    try:
        t0 = time.perf_counter()
        writer = SummaryWriter(str(logdir))
        for batch in open_run(run_dir).iter_batches():
            a, meta = batch.arrays, batch.meta
            names = meta.class_names or []
            for i in range(len(batch)):
                h, w = a["images"].shape[1:3]
                k = int(a["num_boxes"][i])
                xyxy, keep = to_pixel_xyxy_keep(a["boxes"][i, :k], meta.box_format, meta.box_coords, w, h)
                labels = [
                    f"{names[c] if 0 <= c < len(names) else c} {s:.2f}"
                    for c, s in zip(a["box_labels"][i, :k][keep].tolist(), a["box_scores"][i, :k][keep].tolist(), strict=True)
                ]
                tag = tags.name_tag(tags.DEFAULT_PREFIX, tags.example_name(a["ids"][i].item(), i))
                writer.add_image_with_boxes(
                    tag, a["images"][i], xyxy, global_step=batch.step, dataformats="HWC", labels=labels
                )
                images += 1
        writer.close()
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    return {"images": images, "seconds": seconds}


def _drawn_images(run_dir: Path, n: int) -> list:
    """The first ``n`` examples of ``run_dir`` rendered as ``export`` renders them with default options."""
    from .options import ExportOptions, read_options_for
    from .render import render_example
    from .schema import CANONICAL_FIELDS
    from .shards import open_run

    out = []
    options = ExportOptions()
    for batch in open_run(run_dir).iter_batches():
        # with default options, export draws as the shard's metadata says
        names = None if batch.meta.class_names is None else tuple(batch.meta.class_names)
        read = read_options_for(options, batch.meta, names)
        fields = [k for k in batch.arrays if k in CANONICAL_FIELDS]
        for i in range(len(batch)):
            out.append(render_example({k: batch.arrays[k][i] for k in fields}, options.render, read))
            if len(out) == n:
                return out
    return out


def _time_floor(drawn: list, scratch: Path) -> dict[str, Any]:
    """The floor on one core: the default PNG encoder + event write of already-drawn images."""
    from .tensorboard import EventWriter, encode_image, image_colorspace, png_encoder_description

    logdir = Path(tempfile.mkdtemp(prefix="floor-", dir=scratch))
    try:
        t0 = time.perf_counter()
        with EventWriter(logdir) as w:
            for i, img in enumerate(drawn):
                data = encode_image(img, "png", png_encoder="auto")
                w.add_image(
                    f"examples/{i}", data, height=img.height, width=img.width,
                    colorspace=image_colorspace(img), step=100, walltime=1.0,
                )
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    return {"images": len(drawn), "seconds": seconds, "encoder": png_encoder_description()}


def _warm_imports() -> None:
    """Import what the timed code imports on first use: start-up time is the ``start`` row's business."""
    import importlib

    for name in ("PIL.Image", "tensorboardX.proto.event_pb2", "tensorboardX.proto.summary_pb2", "tqdm.auto"):
        importlib.import_module(name)
    importlib.import_module(".api", __package__)
    from .png import deflate_name

    deflate_name()  # loads isal when it is there


def _pass_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run in a child: one timed pass of the export rows (the floor draws its images before its clock starts).

    Besides wall time it reports the CPU time of this process and of its (reaped) workers: on a busy
    machine wall time measures the others' load, CPU time still measures the work.
    """
    run_dir, scratch = Path(cfg["run_dir"]), Path(cfg["scratch"])
    _warm_imports()
    drawn = _drawn_images(run_dir, int(cfg["images"])) if cfg["kind"] == "floor" else None
    self0, kids0 = _cpu_split()
    if cfg["kind"] == "usual_route":
        out = _time_usual_route(run_dir, scratch)
    elif drawn is not None:
        out = _time_floor(drawn, scratch)
    else:
        out = _time_export(run_dir, scratch, png_encoder=cfg["png_encoder"], workers=cfg["workers"])
    self1, kids1 = _cpu_split()
    out["cpu_self"], out["cpu_children"] = self1 - self0, kids1 - kids0
    return out


def _cpu_split() -> tuple[float, float]:
    """CPU seconds of this process, and of its children that were waited for."""
    try:
        import resource
    except ImportError:
        return time.process_time(), 0.0
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _quiet_seconds(s: dict[str, Any]) -> float:
    """The pass's wall time on an otherwise idle machine, estimated from its CPU time: a lower bound.

    One process: its CPU time. With workers: the parent and the workers overlap, so the wall time
    is at least the parent's CPU time and at least all of it spread over the usable cores.
    """
    total = s["cpu_self"] + s["cpu_children"]
    workers = int(s.get("workers", 1))
    if workers <= 1:
        return total
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(s["cpu_self"], total / min(workers, cores))


def _sample(kind: str, cfg: dict[str, Any], env: dict[str, str] | None = None,
            own_cpu: Callable[[], float] = _tree_cpu_seconds) -> dict[str, Any]:
    """One child run, with the share of the machine other processes (beyond ``own_cpu``) used meanwhile."""
    with Contention(own_cpu) as c:
        out = _child([kind, json.dumps(cfg)], env)
    out["others"] = c.share
    return out


def _rate(samples: list[dict[str, Any]]) -> float:
    """Images per second of the median quiet pass."""
    return statistics.median(s["images"] / s["seconds"] for s in _clean(samples))


def _any_quiet(samples: list[dict[str, Any]]) -> bool:
    return any((s.get("others") or 0.0) <= CONTENDED for s in samples)


def _cpu_rate(samples: list[dict[str, Any]]) -> float:
    """Images per second estimated from CPU time (``_quiet_seconds``), median over every pass."""
    return statistics.median(s["images"] / _quiet_seconds(s) for s in samples if "cpu_self" in s)


#: The export variants: each a fresh interpreter per pass. ``base``: isal and fpng hidden (the base install).
_EXPORT_VARIANTS: dict[str, dict[str, Any]] = {
    "usual_route": {"kind": "usual_route"},
    "floor": {"kind": "floor"},
    "defaults_base": {"kind": "export", "png_encoder": "auto", "workers": "auto", "base": True},
    "defaults_fast": {"kind": "export", "png_encoder": "auto", "workers": "auto"},
    "fast_w1": {"kind": "export", "png_encoder": "auto", "workers": 1},
    "fast_w2": {"kind": "export", "png_encoder": "auto", "workers": 2},
    "pillow_auto": {"kind": "export", "png_encoder": "pillow", "workers": "auto"},  # the old default, for the note
}


def bench_export(sizes: Sizes, scratch: Path, results: Results) -> None:
    """Rows defaults, fast, floor, scaling: each variant ``repeats`` times, interleaved, on the same shards."""
    from .png import isal_available

    run_dir = scratch / "run-export"
    _say(f"export rows: generating {sizes.images} images (1 step) in {run_dir}")
    write_run(run_dir, steps=1, per_step=sizes.images, pool=ImagePool(seed=0), seed=0)
    common = {"run_dir": str(run_dir), "scratch": str(scratch), "images": sizes.floor_images}
    variants = dict(_EXPORT_VARIANTS)
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
    wanted = (sizes.repeats + 1) // 2  # quiet passes per variant before the median is trusted
    deadline = time.monotonic() + sizes.export_budget_s
    for r in range(2 * sizes.repeats):  # the extra rounds only re-run variants that were disturbed
        disturbed = any(_needs_more(v, wanted) for v in samples.values())
        if r >= sizes.repeats and (time.monotonic() > deadline or not disturbed):
            break
        order = list(variants)
        order = order[r % len(order) :] + order[: r % len(order)]  # rotate: no variant always runs first
        for name in order:
            if r >= sizes.repeats and not _needs_more(samples[name], wanted):
                continue
            # a fresh interpreter per pass, as on the command line: no pass inherits warm caches from another
            s = _sample("pass", common | variants[name])
            samples[name].append(s)
            _say(f"  pass {r + 1} {name:<14} {s['images'] / s['seconds']:8.1f} img/s" + _others_text(s))
    results.raw["export"] = samples
    results.contention["export"] = _contention_summary(samples)
    # wall time of quiet passes when every variant has some; else (a busy machine) the CPU-time estimate
    basis = "wall" if all(_any_quiet(v) for v in samples.values()) else "cpu"
    wall_ips = {k: _rate(v) for k, v in samples.items()}
    cpu_ips = {k: _cpu_rate(v) for k, v in samples.items()}
    ips = wall_ips if basis == "wall" else cpu_ips
    results.raw["export_images_per_second"] = {"wall": wall_ips, "cpu_estimate": cpu_ips, "basis": basis}
    how = ("" if basis == "wall" else
           "every pass contended: images per second estimated from CPU time (README); wall medians in the JSON")
    usual, floor = ips["usual_route"], ips["floor"]
    enc = {k: v[0].get("encoder", "") for k, v in samples.items()}
    used = {k: int(v[0].get("workers", 1)) for k, v in samples.items()}

    def vs(a: str, b: str) -> str:
        return f"{ips[a]:.0f} vs {ips[b]:.0f} img/s"

    def wall(a: str, b: str) -> str:
        return "" if basis == "wall" else f"wall medians {wall_ips[a] / wall_ips[b]:.2f}x"

    def note(*parts: str) -> str:
        return "; ".join(p for p in (*parts, how) if p)

    pillow = f"Pillow PNG with the same workers: {ips['pillow_auto'] / usual:.1f}x ({ips['pillow_auto']:.0f} img/s)"
    results.rows.append(_at_least(
        "defaults", "export, no options, base install ÷ tensorboardX add_image_with_boxes loop",
        ips["defaults_base"] / usual, 5, vs("defaults_base", "usual_route"),
        note(f"{enc['defaults_base']}, {_workers(used['defaults_base'])}", pillow,
             wall("defaults_base", "usual_route")),
    ))
    if isal_available():
        results.rows.append(_at_least(
            "fast", "export, no options, fast extra (isal) ÷ the same loop", ips["defaults_fast"] / usual, 25,
            vs("defaults_fast", "usual_route"),
            note(f"{enc['defaults_fast']}, {_workers(used['defaults_fast'])}", wall("defaults_fast", "usual_route")),
        ))
        fast = "isal"
    else:
        why = "isal is not installed: pip install 'summary-exporter[fast]'"
        results.skipped.append(Skipped("fast", "export, no options, fast extra ÷ the same loop", ">= 25x", why))
        fast = "zlib: isal is not installed"
    results.rows.append(_at_least(
        "floor", "export, 1 worker ÷ floor (encode + event write of drawn images, 1 core)",
        ips["fast_w1"] / floor, 0.5, vs("fast_w1", "floor"), note(f"{enc['floor']} ({fast})", wall("fast_w1", "floor")),
    ))
    results.rows.append(_at_least(
        "scaling", "export, 2 workers ÷ 1 worker (fast encoder)",
        ips["fast_w2"] / ips["fast_w1"], 1.8, vs("fast_w2", "fast_w1"),
        note(enc["fast_w2"], wall("fast_w2", "fast_w1"),
             "" if basis == "wall" else "the CPU estimate assumes the parent and 2 workers overlap perfectly"),
    ))
    shutil.rmtree(run_dir, ignore_errors=True)


def _workers(n: int) -> str:
    return f"{n} worker{'s' if n > 1 else ''}"


def _others_text(s: dict[str, Any]) -> str:
    others = s.get("others")
    if others is None or others <= CONTENDED:
        return ""
    return f"  (other processes used {others:.0%} of the CPU: set aside)"


# --------------------------------------------------------------------------- row 5: memory and scaling


class PssSampler:
    """Peak summed proportional set size (PSS) of a process and its children, sampled in a thread (Linux).

    PSS splits a page shared by n processes n ways, so forked workers, which share most of
    their parent's pages, are not counted twice as a sum of ``ru_maxrss`` would. The
    sampler runs in the process that *started* the export, never inside it: a thread in
    the export's own process would make ``workers="auto"`` stay in-process (no fork
    beside a running thread).
    """

    def __init__(self, pid: int, interval: float = 0.1):
        import threading

        self.pid = pid
        self.interval = interval
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pss-sampler", daemon=True)
        if os.path.exists("/proc/self/smaps_rollup"):
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        total = sum(_pss_kb(pid) for pid in [self.pid, *_children(self.pid)])
        if total:
            self.peak_mb = max(self.peak_mb or 0.0, total / 1024)

    def stop(self) -> float | None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
        return self.peak_mb


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass  # the process ended between listing and reading
    return 0


def _children(pid: int) -> list[int]:
    """Direct children of ``pid``, from /proc (the worker processes of an export)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                out += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return out


def _maxrss_mb(who: str) -> float:
    import resource

    kb = resource.getrusage(getattr(resource, who)).ru_maxrss
    return kb / 1024 / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS, KiB elsewhere


def _export_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run in a child: one export with the given workers, its time, its own and its workers' peak RSS."""
    import warnings

    _warm_imports()
    from .api import ExportOptions, export

    logdir = tempfile.mkdtemp(prefix="export-mem-", dir=cfg["scratch"])
    workers = cfg["workers"]
    used = _workers_used(workers)
    try:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "TensorBoard shows only 10 samples per tag": true, and not the point
            report = export(cfg["run_dir"], logdir, ExportOptions(workers=workers))
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    return {
        "images": report.images,
        "seconds": seconds,
        "workers": used,
        "self_maxrss_mb": _maxrss_mb("RUSAGE_SELF"),
        "workers_maxrss_mb": _maxrss_mb("RUSAGE_CHILDREN"),
    }


def _measure_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh child: start the export child, sample its tree's PSS from here, add its peak RSS."""
    code = "import sys, exporter.bench as b; raise SystemExit(b._child_main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "export", json.dumps(cfg)], stdout=subprocess.PIPE, text=True)
    sampler = PssSampler(proc.pid)
    stdout, _ = proc.communicate()
    peak = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"bench child export failed with exit status {proc.returncode} (its stderr is above)")
    out = json.loads(stdout.strip().splitlines()[-1])
    out["peak_pss_mb"] = peak
    out["children_maxrss_mb"] = _maxrss_mb("RUSAGE_CHILDREN")  # the largest of the export and its workers
    out["cpu_seconds"] = _cpu_split()[1]  # the export and its workers: this process has no other children
    return out


def bench_memory(sizes: Sizes, cache: Path, scratch: Path, results: Results, quick: bool) -> None:
    """Rows memory and linear: peak memory of an export of the big run with the default workers, time per image."""
    try:
        import resource  # noqa: F401 - POSIX only
    except ImportError:
        results.skipped += [
            Skipped(k, f"{k} row", t, "needs the POSIX resource module") for k, t in (("memory", "<= 1x"),
                                                                                       ("linear", "0.9x .. 1.1x"))
        ]
        return
    big = cached_run(cache if not quick else scratch / "cache", sizes.memory_steps, sizes.memory_per_step)
    size_gb = _dir_bytes(big) / 1e9
    small = min(p for p in big.iterdir() if p.is_dir())  # its first step alone
    n_big, n_small = sizes.memory_steps * sizes.memory_per_step, sizes.memory_per_step
    runs: dict[str, list[dict[str, Any]]] = {"big": [], "small": []}
    deadline = time.monotonic() + sizes.memory_budget_s

    def measure(name: str, folder: Path, what: str) -> None:
        _say(f"{what}: export of {n_big if folder == big else n_small} images, default workers, in a child")
        s = _sample("measure", {"run_dir": str(folder), "workers": "auto", "scratch": str(scratch)})
        runs[name].append(s)
        pss = f"{s['peak_pss_mb']:.0f} MB" if s.get("peak_pss_mb") else "n/a"
        _say(f"  {s['images'] / s['seconds']:.0f} img/s, {_workers(s['workers'])}, peak PSS {pss}, "
             f"largest RSS {s['children_maxrss_mb']:.0f} MB" + _others_text(s))

    for _ in range(2):  # the big run also times the 20k side of "linear": once more if it was disturbed
        measure("big", big, f"memory ({size_gb:.2f} GB of shards)")
        if not _needs_more(runs["big"], 1) or time.monotonic() > deadline:
            break
    for r in range(2 * sizes.small_repeats):
        if r >= sizes.small_repeats and (not _needs_more(runs["small"], (sizes.small_repeats + 1) // 2)
                                         or time.monotonic() > deadline):
            break
        measure("small", small, "linear")
    results.raw["memory"] = runs | {"big_gb": size_gb}
    results.contention["memory"] = _contention_summary(runs)

    w = _clean(runs["big"])[-1]
    note = "" if size_gb >= 2 else f"only {size_gb:.2f} GB of shards ({'--quick' if quick else 'sizes'}); "
    bound = w["self_maxrss_mb"] + w["workers"] * w["workers_maxrss_mb"] if w["workers"] > 1 else w["self_maxrss_mb"]
    note += f"{_workers(w['workers'])}; parent + workers' RSS {bound:.0f} MB (an upper bound: workers share pages)"
    label = f"peak memory, export of {size_gb:.1f} GB / {n_big} images, default workers ÷ 400 MB"
    if w.get("peak_pss_mb"):
        results.rows.append(_at_most(
            "memory", label + " (summed PSS)", w["peak_pss_mb"] / RSS_LIMIT_MB, 1.0, f"{w['peak_pss_mb']:.0f} MB", note,
        ))
    else:
        results.rows.append(_at_most(
            "memory", label + " (parent + workers' RSS)", bound / RSS_LIMIT_MB, 1.0, f"{bound:.0f} MB",
            note + "; no /proc here",
        ))
    clock = "seconds" if _any_quiet(runs["small"]) and _any_quiet(runs["big"]) else "cpu_seconds"
    per_small = statistics.median(s[clock] / s["images"] for s in _clean(runs["small"]))
    per_big = w[clock] / w["images"]
    ratio = per_big / per_small
    why = "below 1: start-up costs (worker processes, caches) spread over more images" if ratio < 0.9 else ""
    if clock == "cpu_seconds":
        why = "; ".join(filter(None, [why, "every run contended: CPU time per image (export and workers)"]))
    results.rows.append(Row(
        "linear", f"time per image, {n_big} ÷ {n_small} images (default workers)", ratio, "0.9x .. 1.1x",
        0.9 <= ratio <= 1.1, f"{per_big * 1e3:.2f} vs {per_small * 1e3:.2f} ms/img", note if size_gb < 2 else why,
    ))


# --------------------------------------------------------------------------- start: a fresh command


def _cli_command() -> list[str]:
    """The console script next to this interpreter, else ``python -m exporter`` (the same ``main``)."""
    script = Path(sys.executable).with_name("summary-exporter")
    return [str(script)] if script.is_file() and os.access(script, os.X_OK) else [sys.executable, "-m", "exporter"]


def bench_start(sizes: Sizes, results: Results) -> None:
    """Row start: ``summary-exporter --help`` in a fresh process, wall time from spawn to exit (best of)."""
    command = [*_cli_command(), "--help"]
    code = "import time; t = time.perf_counter(); import exporter; print(time.perf_counter() - t)"
    times, cpu, imports = [], [], []
    for _ in range(sizes.start_repeats):
        c0, t0 = _children_cpu_seconds(), time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
        cpu.append(_children_cpu_seconds() - c0)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        imports.append(float(out.stdout.strip()))
    best = min(times)
    results.raw["start"] = {"command": command, "help_seconds": times, "help_cpu_seconds": cpu,
                            "import_seconds": imports}
    _say(f"summary-exporter --help: best {best * 1e3:.0f} ms of {len(times)}")
    name = "summary-exporter" if len(command) == 2 else "python -m exporter"
    results.rows.append(_at_most(
        "start", f"{name} --help, fresh process (best of {len(times)}) ÷ 0.3 s", best / START_LIMIT_S, 1.0,
        f"{best:.3f} s", f"CPU {min(cpu) * 1e3:.0f} ms (wall time waits for the CPU on a busy machine); "
        f"import exporter {min(imports) * 1e3:.0f} ms",
    ))


def _children_cpu_seconds() -> float:
    try:
        import resource
    except ImportError:
        return 0.0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


# --------------------------------------------------------------------------- hook: Estimator.evaluate


#: The two eval models: ``light`` makes the hook's share largest (a cheap step moving as many bytes per
#: second), ``heavy`` is the model of earlier runs and the in-graph comparison.
_MODELS: dict[str, dict[str, Any]] = {
    "light": {"size": 64, "convs": ((32, 1), (64, 2)),  # (filters, stride): ~13 MFLOP per image
              "variants": ("no_hook", "hook_every_1", "hook_every_10")},
    "heavy": {"size": IMAGE_SIZE, "convs": tuple((f, s) for f in (32, 64, 128, 128) for s in (2, 1)),  # ~0.7 GFLOP
              "variants": ("no_hook", "hook_every_1", "in_graph")},
}
_EVAL_ROWS = {
    "hook": ("evaluate() with EvalDumpHook every batch ÷ without (light model)", "<= 1.03x"),
    "hook/10": ("evaluate() with EvalDumpHook every_n_steps=10 ÷ without (light model)", "<= 1.005x"),
    "hook/heavy": ("evaluate() with EvalDumpHook every batch ÷ without (heavy model)", "<= 1.03x"),
    "in-graph": ("evaluate() with in-graph summary.image + SummarySaverHook ÷ without (heavy model)", "> hook/heavy"),
}


def estimator_available() -> str | None:
    """None when TensorFlow with tf.estimator is importable here, else why not."""
    import importlib.util

    for module in ("tensorflow", "tensorflow_estimator"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not importable: pip install 'summary-exporter[estimator]'"
    return None


def bench_estimator(sizes: Sizes, scratch: Path, results: Results, skip_reason: str | None = None) -> None:
    """Rows hook, hook/10, hook/heavy, in-graph; each model in its own child process (TensorFlow never
    loads in a process that forks export workers)."""
    why = skip_reason or estimator_available()
    if why is not None:
        results.skipped += [Skipped(k, label, target, why) for k, (label, target) in _EVAL_ROWS.items()]
        return
    shapes = {"light": (sizes.light_batches, sizes.light_batch_size, sizes.light_repeats),
              "heavy": (sizes.eval_batches, sizes.eval_batch_size, sizes.eval_repeats)}
    med, cpu, notes, quiet = {}, {}, {}, {}
    for model, (batches, batch_size, repeats) in shapes.items():
        spec = _MODELS[model]
        cfg = {
            "workdir": str(scratch / f"estimator-{model}"), "model": model, "batches": batches,
            "batch_size": batch_size, "repeats": repeats, "budget_s": sizes.estimator_budget_s / 2,
        }
        _say(
            f"estimator ({model}): {batches} eval batches of {batch_size} x {spec['size']}x{spec['size']}x3 per "
            f"evaluate(), {len(spec['variants'])} variants x {repeats} interleaved, in a child"
        )
        out = _child(["estimator", json.dumps(cfg)])
        samples = out["samples"]
        results.raw[f"estimator_{model}"] = out
        results.contention[f"estimator_{model}"] = _contention_summary(samples)
        quiet[model] = all(_any_quiet(samples[v]) for v in spec["variants"])
        for v in spec["variants"]:
            clean = _clean(samples[v])
            med[model, v] = statistics.median(s["seconds"] for s in clean)
            cpu[model, v] = statistics.median(s["cpu_seconds"] for s in clean)
        notes[model] = (
            f"one eval batch ~{out['step_seconds'] * 1e3:.0f} ms, {out['images_per_evaluate']} images "
            f"({out['mb_per_evaluate']:.0f} MB) per evaluate(); tf.data autotune off"
        )

    def row(key: str, model: str, variant: str, target: float, note: str = "") -> float:
        wall_ratio = med[model, variant] / med[model, "no_hook"]
        cpu_ratio = cpu[model, variant] / cpu[model, "no_hook"]
        if quiet[model]:
            ratio, measured = wall_ratio, f"{med[model, variant]:.2f} vs {med[model, 'no_hook']:.2f} s"
            basis = f"process CPU time {cpu_ratio:.3f}x"
        else:  # wall time on a machine this busy measures the others: the process's CPU time still measures us
            ratio, measured = cpu_ratio, f"CPU {cpu[model, variant]:.2f} vs {cpu[model, 'no_hook']:.2f} s"
            basis = f"every evaluate() contended: process CPU time; wall medians {wall_ratio:.3f}x"
        results.rows.append(_at_most(key, _EVAL_ROWS[key][0], ratio, target, measured, "; ".join(filter(None, [basis, note]))))
        return ratio

    row("hook", "light", "hook_every_1", 1.03, notes["light"])
    row("hook/10", "light", "hook_every_10", 1.005)
    heavy = row("hook/heavy", "heavy", "hook_every_1", 1.03, notes["heavy"])
    times = med if quiet["heavy"] else cpu
    in_graph = times["heavy", "in_graph"] / times["heavy", "no_hook"]
    results.rows.append(Row(
        "in-graph", _EVAL_ROWS["in-graph"][0], in_graph, f"> {heavy:.3f}x (hook/heavy)", in_graph > heavy,
        f"{'' if quiet['heavy'] else 'CPU '}{times['heavy', 'in_graph']:.2f} vs {times['heavy', 'no_hook']:.2f} s",
        f"the hook costs {(heavy - 1) / max(in_graph - 1, 1e-9):.0%} of the in-graph recipe's extra time"
        if in_graph > 1 else "",
    ))


def _estimator_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run in a child: time ``evaluate()`` of one model (``_MODELS``) in each of its variants, interleaved."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    from .capture.estimator import EvalDumpHook

    spec = _MODELS[cfg["model"]]
    variants = spec["variants"]
    workdir = Path(cfg["workdir"])
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    batches, batch_size, size = int(cfg["batches"]), int(cfg["batch_size"]), int(spec["size"])
    num_classes = 10
    pool = ImagePool(seed=2, pool=64, size=size).take(range(64))  # photo-like images, a graph constant

    def input_fn():
        images = tf.data.Dataset.from_tensor_slices(pool).repeat()
        labels = tf.data.Dataset.range(1 << 30).map(lambda i: tf.cast(i % num_classes, tf.int32))
        ds = tf.data.Dataset.zip((images, labels)).take(batches * batch_size).batch(batch_size).prefetch(2)
        # TF 2.15: when the input ends, tf.data's autotune thread can hold Session.close() for ~5 s (its
        # next wake-up), in any variant; that wait would decide which variant "wins", so it is switched off
        options = tf.data.Options()
        options.autotune.enabled = False
        return ds.with_options(options)

    def model_fn(features, labels, mode, params):
        layers = tf.keras.layers
        images = tf.identity(features, name="images")
        labels = tf.identity(labels, name="labels")
        x = tf.cast(images, tf.float32) / 255.0
        for filters, stride in spec["convs"]:
            x = layers.Conv2D(filters, 3, strides=stride, padding="same", activation="relu")(x)
        logits = layers.Dense(num_classes)(tf.reduce_mean(x, axis=[1, 2]))
        probs = tf.nn.softmax(logits, name="probs")
        pred = tf.argmax(probs, axis=1, output_type=tf.int32, name="pred_labels")
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        if mode == tf.estimator.ModeKeys.TRAIN:
            opt = tf.compat.v1.train.GradientDescentOptimizer(0.01)
            return tf.estimator.EstimatorSpec(
                mode, loss=loss, train_op=opt.minimize(loss, global_step=tf.compat.v1.train.get_global_step())
            )
        hooks = []
        if params.get("summary_dir"):
            # the usual in-graph recipe: PNG-encode every eval image in the graph, save them every batch
            op = tf.compat.v1.summary.image("eval_images", images, max_outputs=batch_size)
            saver = tf.compat.v1.train.SummarySaverHook(save_steps=1, output_dir=params["summary_dir"], summary_op=op)
            hooks.append(saver)
        metrics = {"accuracy": tf.compat.v1.metrics.accuracy(labels, pred)}
        return tf.estimator.EstimatorSpec(mode, loss=loss, eval_metric_ops=metrics, evaluation_hooks=hooks)

    config = tf.estimator.RunConfig(model_dir=str(workdir / "model"), tf_random_seed=0, log_step_count_steps=10**9)
    plain = tf.estimator.Estimator(model_fn, config=config, params={})
    plain.train(input_fn, max_steps=1)  # one checkpoint to evaluate
    fetch = {n: f"{n}:0" for n in ("images", "labels", "probs", "pred_labels")}
    names = [f"class{k}" for k in range(num_classes)]

    def evaluate(variant: str, k: int) -> dict[str, Any]:
        scratch = workdir / f"{variant}-{k}"
        hooks, est = [], plain
        if variant.startswith("hook_every_"):
            every = int(variant.rsplit("_", 1)[1])
            hooks = [EvalDumpHook(scratch, fetch, every_n_steps=every, class_names=names, image_range=(0, 255))]
        elif variant == "in_graph":
            est = tf.estimator.Estimator(model_fn, config=config, params={"summary_dir": str(scratch)})
        with Contention(time.process_time) as c:  # this process, all its threads
            t0, c0 = time.perf_counter(), time.process_time()
            est.evaluate(input_fn, hooks=hooks, name=variant)
            out: dict[str, Any] = {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}
        out["others"] = c.share
        if hooks:
            out["examples_dumped"] = hooks[0].writers[-1].written if hooks[0].writers else 0
        if scratch.exists():
            out["bytes_written"] = _dir_bytes(scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        return out

    evaluate("no_hook", -1)  # warm-up: first-graph costs (kernels, thread pools) land in no variant
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    repeats = int(cfg["repeats"])
    wanted = (repeats + 1) // 2
    deadline = time.monotonic() + float(cfg["budget_s"])
    for r in range(2 * repeats):  # the extra rounds only re-run variants that were disturbed
        if r >= repeats and (time.monotonic() > deadline or not any(_needs_more(v, wanted) for v in samples.values())):
            break
        n = len(variants)
        for v in variants[r % n :] + variants[: r % n]:
            if r >= repeats and not _needs_more(samples[v], wanted):
                continue
            s = evaluate(v, r)
            samples[v].append(s)
            extra = {k: s[k] for k in ("examples_dumped", "bytes_written") if k in s}
            print(f"[bench estimator {cfg['model']}] pass {r + 1} {v:<14} {s['seconds']:6.2f} s "
                  f"(CPU {s['cpu_seconds']:6.2f} s) {extra}{_others_text(s)}", file=sys.stderr, flush=True)
    # the cost of one eval batch, for the reader: the fixed part is an evaluate() of one batch
    t0 = time.perf_counter()
    plain.evaluate(input_fn, steps=1, name="one_batch")
    one = time.perf_counter() - t0
    base = statistics.median(s["seconds"] for s in _clean(samples["no_hook"]))
    return {
        "samples": samples,
        "images_per_evaluate": batches * batch_size,
        "mb_per_evaluate": batches * batch_size * size * size * 3 / 1e6,
        "step_seconds": max(0.0, (base - one) / max(1, batches - 1)),
        "one_batch_evaluate_seconds": one,
        "tensorflow": tf.__version__,
    }


# --------------------------------------------------------------------------- tb: TensorBoard with many tags

#: The two ways ``tensorboard`` loads event files: the Rust data server (``--load_fast=true``, what "auto"
#: picks where the binary is: Linux x86_64, macOS x86_64) and the Python loader (everywhere else).
_LOADERS = {"rust": "true", "python": "false"}
TENSORBOARD_TIMEOUT_S = 600.0


def _tb_key(tags: int, loader: str) -> str:
    size = f"{tags // 1000}k" if tags % 1000 == 0 else str(tags)
    return f"tb/{size}" + ("" if loader == "rust" else f"/{loader}")


def tensorboard_available() -> str | None:
    """None when ``tensorboard`` can be started from this interpreter, else why not."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        return "tensorboard is not importable: pip install tensorboard"
    return None


def _rust_loader_available() -> bool:
    try:
        import tensorboard_data_server

        return tensorboard_data_server.server_binary() is not None
    except Exception:  # noqa: BLE001 - no binary for this platform, or a broken install: the Python loader only
        return False


def bench_tensorboard(sizes: Sizes, scratch: Path, results: Results, skip_reason: str | None = None) -> None:
    """Rows tb/...: a real TensorBoard over logdirs this tool wrote, with 1k and 10k per-example tags."""
    why = skip_reason or tensorboard_available()
    keys = [(n, loader) for n in sizes.tensorboard_tags for loader in _LOADERS]
    if why is not None:
        results.skipped += [Skipped(_tb_key(n, lo), f"tensorboard, {n} tags, {lo} loader", "information", why)
                            for n, lo in keys]
        return
    from .api import ExportOptions, export

    raw = {}
    for n in sizes.tensorboard_tags:
        root = scratch / f"tb-{n}"
        _say(f"tensorboard: exporting {n} examples of 64x64 with boxes (one tag each) into {root}")
        write_run(root / "shards", steps=1, per_step=n, pool=ImagePool(seed=4, size=64), seed=4, batch=256)
        report = export(root / "shards", root / "logs" / "eval", ExportOptions(metrics=False))
        event_mb = _dir_bytes(root / "logs") / 1e6
        for loader, flag in _LOADERS.items():
            key = _tb_key(n, loader)
            label = f"tensorboard, {n} per-example tags, {loader} loader: all tags listed ÷ first answer"
            if loader == "rust" and not _rust_loader_available():
                results.skipped.append(Skipped(key, label, "information", "no tensorboard-data-server binary here"))
                continue
            _say(f"  tensorboard --load_fast={flag} over {n} tags ({event_mb:.0f} MB of events)")
            s = _serve_and_time(root / "logs", flag, n, root / f"tensorboard-{loader}.log")
            s["event_mb"], s["images"] = event_mb, report.images
            raw[key] = s
            if s.get("all_tags_s") is None:
                _say(f"  only {s['tags_seen']} of {n} tags listed after {TENSORBOARD_TIMEOUT_S:.0f} s")
                results.skipped.append(Skipped(key, label, "information",
                                               f"only {s['tags_seen']} of {n} tags within {TENSORBOARD_TIMEOUT_S:.0f} s"))
                continue
            _say(f"  first answer {s['up_s']:.1f} s, all {n} tags {s['all_tags_s']:.1f} s, images request "
                 f"{s['images_request_s'] * 1e3:.0f} ms, one image {s['image_s'] * 1e3:.0f} ms")
            results.rows.append(Row(
                key, label, s["all_tags_s"] / s["up_s"], "-", True,
                f"{s['all_tags_s']:.1f} vs {s['up_s']:.1f} s",
                f"tags answer {s['tags_answer_s'] * 1e3:.0f} ms; /images request {s['images_request_s'] * 1e3:.0f} ms, "
                f"one image {s['image_s'] * 1e3:.0f} ms; {event_mb:.0f} MB of events",
                info=True,
            ))
        shutil.rmtree(root, ignore_errors=True)
    results.raw["tensorboard"] = raw


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, timeout: float = 30.0) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def _serve_and_time(logdir: Path, load_fast: str, n: int, log_path: Path) -> dict[str, Any]:
    """Start ``tensorboard`` on a free port; time its first answer, the answer listing all ``n`` tags,
    one ``/images`` request and one image. The server (its own process group) is stopped after."""
    import signal
    import urllib.parse

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
               "--port", str(port), f"--load_fast={load_fast}"]
    out: dict[str, Any] = {"up_s": None, "all_tags_s": None, "tags_seen": 0}
    with open(log_path, "w", encoding="utf-8") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = t0 + TENSORBOARD_TIMEOUT_S
            while time.perf_counter() < deadline and proc.poll() is None:
                try:
                    t1 = time.perf_counter()
                    tags = json.loads(_get(base + "/data/plugin/images/tags")).get("eval", {})
                    t2 = time.perf_counter()
                except OSError:
                    time.sleep(0.05)
                    continue
                if out["up_s"] is None:
                    out["up_s"] = t2 - t0
                out["tags_seen"] = sum(t.startswith("examples/") for t in tags)
                if out["tags_seen"] >= n:
                    out["all_tags_s"], out["tags_answer_s"] = t2 - t0, t2 - t1
                    break
                time.sleep(0.05)
            if out["all_tags_s"] is not None:
                tag = sorted(t for t in tags if t.startswith("examples/"))[n // 2]
                t1 = time.perf_counter()
                entries = json.loads(_get(f"{base}/data/plugin/images/images?" +
                                          urllib.parse.urlencode({"run": "eval", "tag": tag})))
                out["images_request_s"] = time.perf_counter() - t1
                t1 = time.perf_counter()
                data = _get(f"{base}/data/plugin/images/individualImage?{entries[0]['query']}")
                out["image_s"] = time.perf_counter() - t1
                out["image_bytes"] = len(data)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # the server and its data server: the group started here
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return out


# --------------------------------------------------------------------------- storage: object storage and Dask

_STORAGE_ROWS = {
    "s3": ("export S3 -> S3 (moto on loopback) ÷ local -> local, img/s, 1 worker", ">= 0.7x"),
    "s3/memory": ("peak RSS, export S3 -> S3, 1 worker ÷ 400 MB (the local bound)", "<= 1x"),
    "dask": ("export-runs of 8 runs on a 2-worker Dask LocalCluster ÷ one after another", ">= 1.6x"),
    "dask/plain": ("the 8 runs as 4 + 4 in two plain processes at once ÷ one after another (no Dask)", "information"),
}
#: The runs of the dask rows: two halves, so that two plain processes can take one each.
_HALVES = ("a", "b")
_RUNS_PER_HALF = 4


def storage_available() -> str | None:
    """None when the storage rows can run here (s3fs, moto's server, distributed), else why not."""
    import importlib.util

    for module, extra in (("s3fs", "s3"), ("moto", "dev"), ("distributed", "dask")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not importable: pip install 'summary-exporter[{extra}]'"
    if not (Path(sys.executable).parent / "moto_server").exists():
        return "no moto_server beside this Python: pip install 'moto[server]' (the dev extra)"
    return None


def bench_storage(sizes: Sizes, scratch: Path, results: Results) -> None:
    """Rows s3, s3/memory, dask, dask/plain: a remote export against a local one, export-runs on Dask.

    S3 is a ``moto_server`` on 127.0.0.1 started for the section; the children reach it through the standard
    configuration only (``AWS_ENDPOINT_URL``, dummy credentials, config files in an empty folder), and its CPU
    time counts as the remote export's own, not as other load. Every timed pass is a fresh interpreter,
    variants interleaved, medians taken; each process makes one small export before its clock starts.
    """
    why = storage_available()
    if why is not None:
        results.skipped += [Skipped(k, label, target, why) for k, (label, target) in _STORAGE_ROWS.items()]
        return
    run_dir = scratch / "run-storage"
    _say(f"storage rows: generating {sizes.storage_images} images (1 step) in {run_dir}")
    write_run(run_dir, steps=1, per_step=sizes.storage_images, pool=ImagePool(seed=3), seed=3)
    warm = write_run(scratch / "run-storage-warm", steps=1, per_step=8, pool=ImagePool(seed=9), seed=9)
    common = {"warm": str(warm), "scratch": str(scratch)}
    with _moto_server(scratch) as (env, moto):
        bucket = f"s3://summary-exporter-bench-{os.getpid()}"
        _child(["storage_upload", json.dumps({"src": str(run_dir), "dst": f"{bucket}/shards", "bucket": bucket})], env)

        def export_pass(kind: str, r: int) -> dict[str, Any]:
            src, dst = (str(run_dir), str(scratch / f"tb-local-{r}")) if kind == "local" else (
                f"{bucket}/shards", f"{bucket}/tb-{r}")
            m0 = _pid_cpu_seconds(moto.pid)
            s = _sample("storage_export", common | {"src": src, "dst": dst}, env,
                        lambda: _tree_cpu_seconds() + _pid_cpu_seconds(moto.pid))
            s["server_cpu_seconds"] = _pid_cpu_seconds(moto.pid) - m0  # the whole child, its warm-up too
            _say(f"  export {kind:<5} {s['images'] / s['seconds']:6.0f} img/s, peak RSS {s['maxrss_mb']:.0f} MB"
                 + _others_text(s))
            return s

        samples = _interleaved(("local", "s3"), export_pass, sizes.storage_repeats, sizes.storage_budget_s / 2)
    results.raw["storage_export"] = samples
    local, s3 = _rate(samples["local"]), _rate(samples["s3"])
    cpu = {k: statistics.median(s["cpu_seconds"] for s in _clean(v)) for k, v in samples.items()}
    server = statistics.median(s["server_cpu_seconds"] for s in _clean(samples["s3"]))
    quiet = all(_any_quiet(v) for v in samples.values())
    results.rows.append(_at_least(
        "s3", _STORAGE_ROWS["s3"][0], s3 / local, 0.7, f"{s3:.0f} vs {local:.0f} img/s",
        f"{sizes.storage_images} images, {_dir_bytes(run_dir) / 2**20:.0f} MiB of shards; the export's own CPU "
        f"{cpu['s3']:.2f} vs {cpu['local']:.2f} s, moto's {server:.2f} s a pass (on the same cores)"
        + ("" if quiet else "; every pass contended: wall medians of all passes"),
    ))
    peak = max(s["maxrss_mb"] for s in samples["s3"])
    results.rows.append(_at_most(
        "s3/memory", _STORAGE_ROWS["s3/memory"][0], peak / RSS_LIMIT_MB, 1.0, f"{peak:.0f} MB",
        f"local -> local of the same run: {max(s['maxrss_mb'] for s in samples['local']):.0f} MB",
    ))
    shutil.rmtree(run_dir, ignore_errors=True)

    runs = scratch / "runs-storage"
    per_run = sizes.storage_run_images
    _say(f"storage rows: generating {len(_HALVES) * _RUNS_PER_HALF} runs of {per_run} images in {runs}")
    for h, half in enumerate(_HALVES):
        for i in range(h * _RUNS_PER_HALF, (h + 1) * _RUNS_PER_HALF):
            write_run(runs / half / f"run{i}", steps=1, per_step=per_run, pool=ImagePool(seed=10 + i), seed=10 + i)

    def runs_pass(kind: str, r: int) -> dict[str, Any]:
        logroot = scratch / f"runs-tb-{kind}-{r}"
        cfg = common | {"root": str(runs), "logroot": str(logroot), "dask": kind == "dask"}
        if kind == "plain":
            s = _pair_sample([common | {"root": str(runs / h), "logroot": str(logroot / h), "dask": False}
                              for h in _HALVES], scratch / f"pair-{r}")
        else:
            s = _sample("storage_runs", cfg)
        shutil.rmtree(logroot, ignore_errors=True)
        _say(f"  export-runs {kind:<10} {s['seconds']:5.1f} s for {s['images']} images" + _others_text(s))
        return s

    dask = _interleaved(("sequential", "dask", "plain"), runs_pass, sizes.storage_repeats, sizes.storage_budget_s / 2)
    results.raw["storage_runs"] = dask
    results.contention["storage"] = _contention_summary(samples | dask)
    seconds = {k: statistics.median(s["seconds"] for s in _clean(v)) for k, v in dask.items()}
    busy = statistics.median(s["task_seconds"] / s["seconds"] for s in _clean(dask["dask"]))
    contended = "" if all(_any_quiet(v) for v in dask.values()) else "; every pass contended: wall medians of all passes"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    results.rows.append(_at_least(
        "dask", _STORAGE_ROWS["dask"][0], seconds["sequential"] / seconds["dask"], 1.6,
        f"{seconds['dask']:.1f} vs {seconds['sequential']:.1f} s",
        f"8 x {per_run} images, local -> local, cluster started and warmed before the clock; the runs' export "
        f"times ÷ wall time {busy:.2f} (2 = both workers always busy); {cores} cores" + contended,
    ))
    results.rows.append(Row(
        "dask/plain", _STORAGE_ROWS["dask/plain"][0], seconds["sequential"] / seconds["plain"], "-", True,
        f"{seconds['plain']:.1f} vs {seconds['sequential']:.1f} s",
        "what two processes gain here without Dask: the ceiling of the dask row on this machine" + contended,
        info=True,
    ))
    shutil.rmtree(runs, ignore_errors=True)


def _interleaved(variants: Sequence[str], measure: Callable[[str, int], dict[str, Any]], repeats: int,
                 budget_s: float) -> dict[str, list[dict[str, Any]]]:
    """``repeats`` rounds of every variant, rotated, then disturbed variants again while ``budget_s`` lasts."""
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    wanted = (repeats + 1) // 2
    deadline = time.monotonic() + budget_s
    n = len(variants)
    for r in range(2 * repeats):  # the extra rounds only re-run variants that were disturbed
        if r >= repeats and (time.monotonic() > deadline or not any(_needs_more(v, wanted) for v in samples.values())):
            break
        for v in [*variants[r % n :], *variants[: r % n]]:
            if r < repeats or _needs_more(samples[v], wanted):
                samples[v].append(measure(v, r))
    return samples


def _pid_cpu_seconds(pid: int) -> float:
    """CPU seconds a running process has used (Linux /proc), 0 elsewhere: the moto server's, counted as ours."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, ValueError, IndexError):
        return 0.0


@contextlib.contextmanager
def _moto_server(scratch: Path) -> Iterator[tuple[dict[str, str], subprocess.Popen]]:
    """A ``moto_server`` on a free port of 127.0.0.1, and the environment that sends boto3 and s3fs to it."""
    import urllib.request

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback never goes through a proxy
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(scratch / "moto.log", "wb") as log:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with direct.open(endpoint + "/moto-api/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {endpoint} (see {scratch / 'moto.log'})") from None
                time.sleep(0.05)
        config = scratch / "aws"  # empty: a developer's own ~/.aws profile can neither leak in nor redirect
        config.mkdir(exist_ok=True)
        yield {
            "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(config / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(config / "credentials"),
            "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"])),
        }, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pair_sample(cfgs: list[dict[str, Any]], sync: Path) -> dict[str, Any]:
    """Two ``storage_runs`` children at once, released together after both warmed up; the pair's wall time."""
    sync.mkdir(parents=True, exist_ok=True)
    go = sync / "go"
    with Contention() as c:
        procs = []
        for i, cfg in enumerate(cfgs):
            cfg = cfg | {"ready": str(sync / f"ready-{i}"), "go": str(go)}
            procs.append(subprocess.Popen([sys.executable, "-c", _CHILD_CODE, "storage_runs", json.dumps(cfg)],
                                          stdout=subprocess.PIPE, text=True))
        try:
            deadline = time.monotonic() + 300
            while not all((sync / f"ready-{i}").exists() for i in range(len(cfgs))):
                if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                    break  # a child failed (or hangs): its exit status says so below
                time.sleep(0.005)
            go.touch()
            outs = [p.communicate()[0] for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    for p in procs:
        if p.returncode != 0:
            raise RuntimeError(f"bench child storage_runs failed with exit status {p.returncode} (its stderr is above)")
    each = [json.loads(out.strip().splitlines()[-1]) for out in outs]
    shutil.rmtree(sync, ignore_errors=True)
    return {"seconds": max(s["end"] for s in each) - min(s["start"] for s in each), "images": sum(s["images"] for s in each),
            "task_seconds": sum(s["task_seconds"] for s in each), "each": each, "others": c.share}


def _warm_export(run_dir: str, scratch: str) -> None:
    """One small export, thrown away: what a process pays for its first export (imports, encoder, caches)."""
    import warnings

    _warm_imports()
    from .api import ExportOptions, export

    logdir = tempfile.mkdtemp(prefix="warm-", dir=scratch)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export(run_dir, logdir, ExportOptions(workers=1))
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


def _storage_upload_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run in a child: make the bucket and put a local run folder under ``dst``."""
    from .storage import join, locate, put_file

    target = locate(cfg["dst"])
    target.fs.mkdir(cfg["bucket"].removeprefix("s3://"))
    src = Path(cfg["src"])
    files = [p for p in sorted(src.rglob("*")) if p.is_file()]
    for p in files:
        put_file(p, join(target, p.relative_to(src).as_posix()))
    return {"files": len(files)}


def _storage_export_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run in a child: one export ``src`` -> ``dst`` (paths or URLs) on 1 worker; its time, CPU and peak RSS."""
    import warnings

    from .api import ExportOptions, export
    from .storage import locate, remove

    _warm_export(cfg["warm"], cfg["scratch"])  # local: what a remote export also needs before its first byte
    if "://" in cfg["src"]:
        import importlib

        importlib.import_module("s3fs")  # before the clock: the local pass has nothing more to import
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "TensorBoard shows only 10 samples per tag": true, and not the point
        report = export(cfg["src"], cfg["dst"], ExportOptions(workers=1))
    out = {"images": report.images, "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
           "maxrss_mb": _maxrss_mb("RUSAGE_SELF")}
    remove(locate(cfg["dst"]), recursive=True)  # keeps moto's memory (and the disk) flat across passes
    return out


def _storage_runs_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run in a child: ``export_runs`` of ``root``, one after another or on a 2-worker LocalCluster started first.

    Every process makes one small export first (each Dask worker too), so the clock sees no first export.
    With ``ready`` and ``go`` (two plain processes at once) it says it is ready and waits for the go.
    """
    import warnings

    from .api import ExportOptions, export_runs

    cluster = client = None
    scheduler = None
    if cfg["dask"]:
        import distributed

        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                           host="127.0.0.1")
        client = distributed.Client(cluster)
        client.run(_warm_export, cfg["warm"], cfg["scratch"])
        scheduler = cluster.scheduler_address
    else:
        _warm_export(cfg["warm"], cfg["scratch"])
    if cfg.get("ready"):
        Path(cfg["ready"]).touch()
        deadline = time.monotonic() + 300
        while not os.path.exists(cfg["go"]) and time.monotonic() < deadline:
            time.sleep(0.002)
    try:
        start, t0 = time.time(), time.perf_counter()  # time.time: the pair's two clocks are compared
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = export_runs(cfg["root"], cfg["logroot"], ExportOptions(workers=1), scheduler=scheduler)
        seconds, end = time.perf_counter() - t0, time.time()
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    if report.failed:
        raise RuntimeError(f"export-runs failed: {[(r.run, r.error) for r in report.failed]}")
    return {"images": sum(r.images for r in report.results), "seconds": seconds, "start": start, "end": end,
            "task_seconds": sum(r.seconds for r in report.results)}



# --------------------------------------------------------------------------- child processes


_CHILD_CODE = "import sys, exporter.bench as b; raise SystemExit(b._child_main(sys.argv[1:]))"


def _child(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``_child_main(argv)`` in a fresh interpreter, with ``env`` added to this environment; it prints one
    JSON object as its last stdout line."""
    out = subprocess.run([sys.executable, "-c", _CHILD_CODE, *argv], stdout=subprocess.PIPE, text=True, check=False,
                         env=None if env is None else {**os.environ, **env})
    if out.returncode != 0:
        raise RuntimeError(f"bench child {argv[0]} failed with exit status {out.returncode} (its stderr is above)")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child_main(argv: Sequence[str]) -> int:
    kind, cfg = argv[0], json.loads(argv[1])
    if cfg.get("base"):
        for module in _EXTRAS:  # importing them now raises ImportError: the base install
            sys.modules[module] = None  # type: ignore[assignment]
    children = {"pass": _pass_child, "export": _export_child, "measure": _measure_child, "estimator": _estimator_child,
                "storage_upload": _storage_upload_child, "storage_export": _storage_export_child,
                "storage_runs": _storage_runs_child}
    if kind not in children:
        raise SystemExit(f"unknown bench child {kind!r}")
    print(json.dumps(children[kind](cfg)))
    return 0


# --------------------------------------------------------------------------- table


def format_table(results: Results) -> str:
    m = results.machine
    loads = (("start", m.get("load_start")), ("end", m.get("load_end")))
    load = ", ".join(f"{k} {v:.2f}" for k, v in loads if v is not None)
    busy = sum(c["contended"] for c in results.contention.values())
    every = sum(c["samples"] for c in results.contention.values())
    lines = [
        "summary-exporter bench: ratios of measurements taken side by side in this run"
        + (" (--quick: sizes too small for the targets to mean much)" if results.quick else ""),
        f"machine:  {machine_line(m)}",
        (
            f"load:     1-min load average {load or 'unknown'}; {busy} of {every} timed samples ran while other "
            f"processes used > {CONTENDED:.0%} of the CPU (set aside from the medians, re-run while time allowed)"
        ),
        "versions: " + ", ".join(f"{k} {v}" for k, v in results.versions.items()),
        f"data:     {results.data}",
        "",
    ]
    head = ("row", "measure", "ratio", "target", "", "measured")
    order = {k: i for i, k in enumerate(ROW_KEYS)}
    table = [head] + sorted(
        [
            (r.key, r.label, _ratio_text(r.ratio), r.target, "info" if r.info else "met" if r.met else "NOT MET",
             r.measured + (f"; {r.note}" if r.note else ""))
            for r in results.rows
        ]
        + [(s.key, s.label, "-", s.target, "skipped", s.reason) for s in results.skipped],
        key=lambda row: (order.get(row[0], len(order)), row[0]),
    )
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    for row in table:
        cells = [row[i].ljust(widths[i]) if i != 2 else row[i].rjust(widths[i]) for i in range(len(head) - 1)]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
    targeted = [r for r in results.rows if not r.info]
    met = sum(r.met for r in targeted)
    lines += [
        "",
        (
            f"{met} of {len(targeted)} measured rows met their target; {len(results.rows) - len(targeted)} "
            f"for information; {len(results.skipped)} skipped; "
            f"{results.seconds:.0f} s"
        ),
    ]
    return "\n".join(lines)


def _ratio_text(ratio: float) -> str:
    """Three decimals below 10x, so a ratio just over a target like 1.05x never prints as the target."""
    return f"{ratio:.2f}x" if ratio >= 10 else f"{ratio:.3f}x"


# --------------------------------------------------------------------------- command line


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table to stdout (progress to stderr), write JSON if asked; 0 on success."""
    global _T0
    unknown = sorted(set(args.skip) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"--skip {', '.join(unknown)}: the sections are {', '.join(SECTIONS)}")
    _T0 = time.monotonic()
    sizes = QUICK if args.quick else FULL
    if args.images is not None:
        images = max(2, args.images)
        sizes = dataclasses.replace(sizes, images=images, floor_images=min(sizes.floor_images, images))
    if args.repeats is not None:
        sizes = dataclasses.replace(sizes, repeats=max(1, args.repeats))
    data = (
        f"{IMAGE_SIZE}x{IMAGE_SIZE} RGB uint8 photo-like images (~100 kB as PNG), {BOXES_PER_IMAGE} boxes "
        f"(normalised yxyx) with class ids and scores per image, {len(COCO_NAMES)} COCO class names; "
        f"export rows: {sizes.images} images x {sizes.repeats} interleaved passes (median)"
    )
    results = Results(machine_info(), library_versions(), data, sizes, bool(args.quick))
    own_scratch = args.workdir is None
    scratch = Path(tempfile.mkdtemp(prefix="summary-exporter-bench-")) if own_scratch else Path(args.workdir)
    scratch.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    _say(f"machine: {machine_line(results.machine)}")
    skipped = {
        "export": ("defaults", "fast", "floor", "scaling"), "memory": ("memory", "linear"), "start": ("start",),
        "storage": tuple(_STORAGE_ROWS),
    }
    try:
        if "start" not in args.skip:
            bench_start(sizes, results)
        if "export" not in args.skip:
            bench_export(sizes, scratch, results)
        if "memory" not in args.skip:
            bench_memory(sizes, cache, scratch, results, bool(args.quick))
        skip = "--quick" if args.quick else "--skip estimator" if "estimator" in args.skip else None
        bench_estimator(sizes, scratch, results, skip)
        skip = "--quick" if args.quick else "--skip tensorboard" if "tensorboard" in args.skip else None
        bench_tensorboard(sizes, scratch, results, skip)
        if "storage" not in args.skip:
            bench_storage(sizes, scratch, results)
        for section, keys in skipped.items():
            if section in args.skip:
                results.skipped += [Skipped(k, f"{section} row", "-", f"--skip {section}") for k in keys]
    finally:
        if own_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    results.machine["load_end"] = _load_average()
    results.seconds = time.monotonic() - _T0
    print(format_table(results))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results.to_json(), indent=2) + "\n", encoding="utf-8")
        _say(f"wrote {path}")
    return 0
