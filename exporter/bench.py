"""``summary-exporter bench``: ratios measured side by side in one run, never absolute thresholds.

Every row divides two things measured in the same run on the same machine, on
generated data of a stated size: 224 x 224 RGB uint8 images that look like
photos to a PNG encoder (smooth colour fields, filled discs, sensor noise), 10
predicted boxes (normalised yxyx, the TensorFlow default) with class ids and
scores per image, and the 80 COCO class names. Rows:

1. ``export`` images/s ÷ the usual route: a tensorboardX ``SummaryWriter.add_image_with_boxes``
   loop over the same shards (boxes converted to pixel xyxy, labels "name score", PNG);
2. ``export`` images/s per core ÷ the floor: encoding already-drawn images with the best
   available PNG encoder and writing them as events, on one core;
3. ``export`` with 2 workers ÷ 1 worker;
4. ``Estimator.evaluate`` wall time with ``EvalDumpHook`` (every batch, every 10th) and with
   in-graph ``tf.compat.v1.summary.image`` + ``SummarySaverHook``, each ÷ without either
   (a real TF 2.15 Estimator, in a child process; skipped without tensorflow_estimator);
5. peak RSS of an export over >= 2 GB of shards ÷ 400 MB (child process, ``RUSAGE_CHILDREN``),
   and time per image at 20k ÷ 1k images;
6. ``import exporter`` in a fresh interpreter ÷ 0.3 s.

Each row shows the target from the performance issue and whether this run met
it; the exit status is 0 either way (the test suite asserts behaviour, never
speed). Timed samples run interleaved, each in a fresh interpreter, and the
medians are taken; a sample during which other processes used more than 10 %
of the machine's CPU is set aside and re-run while the time budget allows
(the table says how many). ``--json PATH`` writes the rows, the raw samples,
the machine and the library versions.

>>> import argparse, exporter.bench as bench                       # doctest: +SKIP
>>> p = argparse.ArgumentParser(); bench.add_arguments(p)          # doctest: +SKIP
>>> bench.run(p.parse_args(["--quick", "--json", "bench.json"]))   # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
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
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

IMAGE_SIZE = 224
BOXES_PER_IMAGE = 10
RSS_LIMIT_MB = 400.0
IMPORT_LIMIT_S = 0.3
#: Bump when the generated data changes, so an old cache is not reused.
DATA_VERSION = 1
SECTIONS = ("export", "estimator", "memory", "import")

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

    images: int  # rows 1-3: images per pass, one step
    repeats: int  # rows 1-3: interleaved passes, medians taken
    floor_images: int  # row 2: already-drawn images kept in memory for the floor
    memory_steps: int  # row 5: steps of the big run ...
    memory_per_step: int  # ... and images per step (the small run is its first step)
    small_repeats: int  # row 5: exports of the small run (median)
    eval_batches: int  # row 4: eval batches per evaluate() ...
    eval_batch_size: int  # ... of this many images
    eval_repeats: int  # row 4: interleaved evaluate() calls per variant (median)
    import_repeats: int  # row 6: fresh interpreters (best of)
    # seconds after which disturbed samples are no longer re-run (see ``Contention``)
    export_budget_s: float = 300.0
    memory_budget_s: float = 150.0
    estimator_budget_s: float = 420.0


FULL = Sizes(
    images=1024, repeats=3, floor_images=512, memory_steps=20, memory_per_step=1000, small_repeats=3,
    eval_batches=30, eval_batch_size=32, eval_repeats=5, import_repeats=7,
)
QUICK = Sizes(
    images=48, repeats=1, floor_images=24, memory_steps=4, memory_per_step=24, small_repeats=1,
    eval_batches=3, eval_batch_size=4, eval_repeats=1, import_repeats=3,
    export_budget_s=0.0, memory_budget_s=0.0, estimator_budget_s=0.0,
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
    "summary-exporter", "numpy", "pillow", "tensorboardX", "protobuf", "fpng", "crc32c", "tqdm",
    "tensorflow-cpu", "tensorflow", "tensorflow-estimator",
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

    def take(self, ids: Sequence[int]) -> np.ndarray:
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

    def __enter__(self) -> "Contention":
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


# --------------------------------------------------------------------------- rows 1-3: export throughput


def _time_export(run_dir: Path, scratch: Path, *, png_encoder: str, workers: int) -> dict[str, float]:
    """One ``export`` of ``run_dir``: images and seconds (event file removed afterwards)."""
    from .api import ExportOptions, export

    logdir = Path(tempfile.mkdtemp(prefix="export-", dir=scratch))
    try:
        t0 = time.perf_counter()
        report = export(run_dir, logdir, ExportOptions(png_encoder=png_encoder, workers=workers))
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    return {"images": report.images, "seconds": seconds}


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
                    for c, s in zip(a["box_labels"][i, :k][keep].tolist(), a["box_scores"][i, :k][keep].tolist())
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
    from .render import ReadOptions, render_example
    from .schema import CANONICAL_FIELDS
    from .shards import open_run

    out = []
    for batch in open_run(run_dir).iter_batches():
        m = batch.meta  # with default options, export draws as the shard's metadata says
        read = ReadOptions(
            class_names=m.class_names, box_format=m.box_format, box_coords=m.box_coords, layout=m.image_layout,
            value_range=tuple(m.image_range) if m.image_range is not None else None,
        )
        fields = [k for k in batch.arrays if k in CANONICAL_FIELDS]
        for i in range(len(batch)):
            out.append(render_example({k: batch.arrays[k][i] for k in fields}, read=read))
            if len(out) == n:
                return out
    return out


def _time_floor(drawn: list, scratch: Path) -> dict[str, float]:
    """The floor on one core: best-available PNG encoder + event write of already-drawn images."""
    from .tensorboard import EventWriter, encode_image, image_colorspace

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
    return {"images": len(drawn), "seconds": seconds}


def _warm_imports() -> None:
    """Import what the timed code imports on first use: import time is row 6's business, not throughput's."""
    import importlib

    for name in ("PIL.Image", "tensorboardX.proto.event_pb2", "tensorboardX.proto.summary_pb2", "tqdm.auto"):
        importlib.import_module(name)
    importlib.import_module(".api", __package__)
    from .tensorboard import png_encoder_name

    png_encoder_name("auto")  # loads fpng when it is there


def _pass_child(cfg: dict[str, Any]) -> dict[str, float]:
    """Run in a child: one timed pass of rows 1-3 (the floor draws its images before its clock starts)."""
    run_dir, scratch = Path(cfg["run_dir"]), Path(cfg["scratch"])
    _warm_imports()
    if cfg["kind"] == "usual_route":
        return _time_usual_route(run_dir, scratch)
    if cfg["kind"] == "floor":
        return _time_floor(_drawn_images(run_dir, int(cfg["images"])), scratch)
    return _time_export(run_dir, scratch, png_encoder=cfg["png_encoder"], workers=int(cfg["workers"]))


def _sample(kind: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """One child run, with the share of the machine other processes used meanwhile."""
    with Contention() as c:
        out = _child([kind, json.dumps(cfg)])
    out["others"] = c.share
    return out


def _rate(samples: list[dict[str, Any]]) -> float:
    """Images per second of the median quiet pass."""
    return statistics.median(s["images"] / s["seconds"] for s in _clean(samples))


def bench_export(sizes: Sizes, scratch: Path, results: Results) -> None:
    """Rows 1-3: each variant in a fresh interpreter ``repeats`` times, interleaved, on the same shards."""
    from .tensorboard import png_encoder_name

    best = png_encoder_name("auto")
    run_dir = scratch / "run-export"
    _say(f"export rows: generating {sizes.images} images (1 step) in {run_dir}")
    write_run(run_dir, steps=1, per_step=sizes.images, pool=ImagePool(seed=0), seed=0)
    common = {"run_dir": str(run_dir), "scratch": str(scratch)}
    variants: dict[str, dict[str, Any]] = {
        "usual_route": {"kind": "usual_route"},
        "floor": {"kind": "floor", "images": sizes.floor_images},
    }
    encoders = ["fpng", "pillow"] if best == "fpng" else ["pillow"]
    for enc in encoders:
        for workers in (1, 2):
            variants[f"export_{enc}_w{workers}"] = {"kind": "export", "png_encoder": enc, "workers": workers}
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
            _say(f"  pass {r + 1} {name:<18} {s['images'] / s['seconds']:8.1f} img/s" + _others_text(s))
    results.raw["export"] = samples
    results.contention["export"] = _contention_summary(samples)
    ips = {k: _rate(v) for k, v in samples.items()}
    results.raw["export_images_per_second"] = ips
    usual, floor = ips["usual_route"], ips["floor"]

    def vs(a: str, b: str) -> str:
        return f"{ips[a]:.0f} vs {ips[b]:.0f} img/s"

    label_1a = "export (fpng, 2 workers) ÷ tensorboardX add_image_with_boxes"
    if "export_fpng_w2" in ips:
        ratio = ips["export_fpng_w2"] / usual
        results.rows.append(_at_least("1a", label_1a, ratio, 20, vs("export_fpng_w2", "usual_route")))
    else:
        why = "fpng is not installed: pip install 'summary-exporter[fast]'"
        results.skipped.append(Skipped("1a", label_1a, ">= 20x", why))
    for workers, key in ((1, "1b"), (2, "1c")):
        results.rows.append(_at_least(
            key, f"export (pillow, {_workers(workers)}) ÷ tensorboardX add_image_with_boxes",
            ips[f"export_pillow_w{workers}"] / usual, 3, vs(f"export_pillow_w{workers}", "usual_route"),
        ))
    for workers, key in ((1, "2a"), (2, "2b")):
        per_core = ips[f"export_{best}_w{workers}"] / workers
        results.rows.append(_at_least(
            key, f"export ({best}, {_workers(workers)}) per core ÷ floor ({best} + event write, 1 core)",
            per_core / floor, 0.5, f"{per_core:.0f} vs {floor:.0f} img/s per core",
        ))
    for enc, key in zip(encoders, ("3a", "3b")):
        results.rows.append(_at_least(
            key, f"export ({enc}) 2 workers ÷ 1 worker",
            ips[f"export_{enc}_w2"] / ips[f"export_{enc}_w1"], 1.7, vs(f"export_{enc}_w2", f"export_{enc}_w1"),
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
    """Peak summed proportional set size (PSS) of this process and its children, sampled in a thread (Linux).

    PSS splits a page shared by n processes n ways, so forked workers, which share most of
    their parent's pages, are not counted twice as a sum of ``ru_maxrss`` would.
    """

    def __init__(self, interval: float = 0.2):
        import threading

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
        me = os.getpid()
        total = sum(_pss_kb(pid) for pid in [me, *_children(me)])
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
    """Run in a child: one export, its time, and the peak memory of this process and of its workers."""
    import warnings

    _warm_imports()
    from .api import ExportOptions, export

    logdir = tempfile.mkdtemp(prefix="export-mem-", dir=cfg["scratch"])
    sampler = PssSampler()
    try:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "TensorBoard shows only 10 samples per tag": true, and not the point
            report = export(cfg["run_dir"], logdir, ExportOptions(workers=int(cfg["workers"])))
        seconds = time.perf_counter() - t0
    finally:
        peak_pss = sampler.stop()
        shutil.rmtree(logdir, ignore_errors=True)
    return {
        "images": report.images,
        "seconds": seconds,
        "peak_pss_mb": peak_pss,
        "self_maxrss_mb": _maxrss_mb("RUSAGE_SELF"),
        "workers_maxrss_mb": _maxrss_mb("RUSAGE_CHILDREN"),
    }


def _measure_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh child whose only child is the export: its ``RUSAGE_CHILDREN`` is that export's alone."""
    out = _child(["export", json.dumps(cfg)])
    out["children_maxrss_mb"] = _maxrss_mb("RUSAGE_CHILDREN")
    return out


def bench_memory(sizes: Sizes, cache: Path, scratch: Path, results: Results, quick: bool) -> None:
    """Row 5: peak memory of an export over the big run, and time per image on the small vs the big run."""
    try:
        import resource  # noqa: F401 - POSIX only
    except ImportError:
        results.skipped += [
            Skipped(k, f"memory row {k}", t, "needs the POSIX resource module")
            for k, t in (("5a", "<= 1x"), ("5b", "<= 1x"), ("5c", "0.9x .. 1.1x"))
        ]
        return
    big = cached_run(cache if not quick else scratch / "cache", sizes.memory_steps, sizes.memory_per_step)
    size_gb = _dir_bytes(big) / 1e9
    small = min(p for p in big.iterdir() if p.is_dir())  # its first step alone
    n_big, n_small = sizes.memory_steps * sizes.memory_per_step, sizes.memory_per_step
    runs: dict[str, list[dict[str, Any]]] = {"big_w1": [], "big_w2": [], "small_w2": []}
    deadline = time.monotonic() + sizes.memory_budget_s

    def measure(name: str, folder: Path, workers: int, what: str) -> None:
        _say(f"{what}: export of {n_big if folder == big else n_small} images, workers={workers}, in a child")
        s = _sample("measure", {"run_dir": str(folder), "workers": workers, "scratch": str(scratch)})
        runs[name].append(s)
        _say(f"  {s['images'] / s['seconds']:.0f} img/s, peak RSS {s['children_maxrss_mb']:.0f} MB" + _others_text(s))

    measure("big_w1", big, 1, f"memory ({size_gb:.2f} GB of shards)")
    for _ in range(2):  # the big run with 2 workers also times the 20k side of 5c: once more if it was disturbed
        measure("big_w2", big, 2, "memory and scaling")
        if not _needs_more(runs["big_w2"], 1) or time.monotonic() > deadline:
            break
    for r in range(2 * sizes.small_repeats):
        if r >= sizes.small_repeats and (not _needs_more(runs["small_w2"], (sizes.small_repeats + 1) // 2)
                                         or time.monotonic() > deadline):
            break
        measure("small_w2", small, 2, "scaling")
    results.raw["memory"] = runs | {"big_gb": size_gb}
    results.contention["memory"] = _contention_summary(runs)

    w1 = runs["big_w1"][0]
    note = "" if size_gb >= 2 else f"only {size_gb:.2f} GB of shards ({'--quick' if quick else 'sizes'})"
    results.rows.append(_at_most(
        "5a", f"peak RSS, export of {size_gb:.1f} GB / {n_big} images (1 worker) ÷ 400 MB",
        w1["children_maxrss_mb"] / RSS_LIMIT_MB, 1.0, f"{w1['children_maxrss_mb']:.0f} MB", note,
    ))
    w2 = _clean(runs["big_w2"])[-1]
    bound = w2["self_maxrss_mb"] + 2 * w2["workers_maxrss_mb"]
    bound_text = f"parent + 2 x largest worker RSS: {bound:.0f} MB (an upper bound: workers share pages)"
    if w2.get("peak_pss_mb"):
        results.rows.append(_at_most(
            "5b", "peak memory, same export, 2 workers (summed PSS, sampled) ÷ 400 MB",
            w2["peak_pss_mb"] / RSS_LIMIT_MB, 1.0, f"{w2['peak_pss_mb']:.0f} MB", bound_text,
        ))
    else:
        results.rows.append(_at_most(
            "5b", "peak memory, same export, 2 workers (parent + 2 x largest worker RSS) ÷ 400 MB",
            bound / RSS_LIMIT_MB, 1.0, f"{bound:.0f} MB", "no /proc here: an upper bound, workers share pages",
        ))
    per_small = statistics.median(s["seconds"] / s["images"] for s in _clean(runs["small_w2"]))
    per_big = w2["seconds"] / w2["images"]
    ratio = per_big / per_small
    results.rows.append(Row(
        "5c", f"time per image, {n_big} ÷ {n_small} images (2 workers)", ratio, "0.9x .. 1.1x",
        0.9 <= ratio <= 1.1, f"{per_big * 1e3:.2f} vs {per_small * 1e3:.2f} ms/img",
        note or ("below 1: start-up costs (worker processes, caches) spread over more images" if ratio < 0.9 else ""),
    ))


# --------------------------------------------------------------------------- row 6: import time


def bench_import(sizes: Sizes, results: Results) -> None:
    code = "import time; t = time.perf_counter(); import exporter; print(time.perf_counter() - t)"
    times = []
    for _ in range(sizes.import_repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip()))
    best = min(times)
    results.raw["import_seconds"] = times
    _say(f"import exporter: best {best * 1e3:.0f} ms of {len(times)}")
    results.rows.append(_at_most(
        "6", f"import exporter, fresh interpreter (best of {len(times)}) ÷ 0.3 s",
        best / IMPORT_LIMIT_S, 1.0, f"{best:.3f} s",
    ))


# --------------------------------------------------------------------------- row 4: Estimator.evaluate


_EVAL_VARIANTS = ("no_hook", "hook_every_1", "hook_every_10", "in_graph")
_EVAL_ROWS = {
    "4a": ("evaluate() with EvalDumpHook every batch ÷ without", "<= 1.05x"),
    "4b": ("evaluate() with EvalDumpHook every_n_steps=10 ÷ without", "<= 1.01x"),
    "4c": ("evaluate() with in-graph summary.image + SummarySaverHook ÷ without", "> row 4a"),
}


def estimator_available() -> str | None:
    """None when TensorFlow with tf.estimator is importable here, else why not."""
    import importlib.util

    for module in ("tensorflow", "tensorflow_estimator"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not importable: pip install 'summary-exporter[estimator]'"
    return None


def bench_estimator(sizes: Sizes, scratch: Path, results: Results, skip_reason: str | None = None) -> None:
    """Row 4, in a child process: TensorFlow must never be loaded in a process that forks export workers."""
    why = skip_reason or estimator_available()
    if why is not None:
        results.skipped += [Skipped(k, label, target, why) for k, (label, target) in _EVAL_ROWS.items()]
        return
    cfg = {
        "workdir": str(scratch / "estimator"),
        "batches": sizes.eval_batches,
        "batch_size": sizes.eval_batch_size,
        "repeats": sizes.eval_repeats,
        "budget_s": sizes.estimator_budget_s,
    }
    _say(
        f"estimator: {sizes.eval_batches} eval batches of {sizes.eval_batch_size} x 224x224x3 per evaluate(), "
        f"{len(_EVAL_VARIANTS)} variants x {sizes.eval_repeats} interleaved, in a child"
    )
    out = _child(["estimator", json.dumps(cfg)])
    samples = out["samples"]
    results.raw["estimator"] = out
    results.contention["estimator"] = _contention_summary(samples)
    med = {v: statistics.median(s["seconds"] for s in _clean(samples[v])) for v in _EVAL_VARIANTS}
    base = med["no_hook"]

    def measured(v: str) -> str:
        return f"{med[v]:.2f} vs {base:.2f} s"

    note = (
        f"one eval batch ~{out['step_seconds'] * 1e3:.0f} ms, {out['images_per_evaluate']} images per evaluate(); "
        "tf.data autotune off"
    )
    r1, r3 = med["hook_every_1"] / base, med["in_graph"] / base
    results.rows.append(_at_most("4a", _EVAL_ROWS["4a"][0], r1, 1.05, measured("hook_every_1"), note))
    results.rows.append(
        _at_most("4b", _EVAL_ROWS["4b"][0], med["hook_every_10"] / base, 1.01, measured("hook_every_10"))
    )
    results.rows.append(Row("4c", _EVAL_ROWS["4c"][0], r3, f"> {r1:.3f}x (4a)", r3 > r1, measured("in_graph")))


def _estimator_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run in a child: time ``evaluate()`` of a small conv net on 224 x 224 images in each variant."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    from .capture.estimator import EvalDumpHook

    workdir = Path(cfg["workdir"])
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    batches, batch_size = int(cfg["batches"]), int(cfg["batch_size"])
    num_classes = 10
    pool = ImagePool(seed=2, pool=64).take(range(64))  # 9.6 MB of photo-like images, a graph constant

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
        for filters in (32, 64, 128, 128):  # ~0.7 GFLOP per image: an eval step that costs something
            x = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
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
            t0 = time.perf_counter()
            est.evaluate(input_fn, hooks=hooks, name=variant)
            out: dict[str, Any] = {"seconds": time.perf_counter() - t0}
        out["others"] = c.share
        if hooks:
            out["examples_dumped"] = hooks[0].writers[-1].written if hooks[0].writers else 0
        if scratch.exists():
            out["bytes_written"] = _dir_bytes(scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        return out

    evaluate("no_hook", -1)  # warm-up: first-graph costs (kernels, thread pools) land in no variant
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in _EVAL_VARIANTS}
    repeats = int(cfg["repeats"])
    wanted = (repeats + 1) // 2
    deadline = time.monotonic() + float(cfg["budget_s"])
    for r in range(2 * repeats):  # the extra rounds only re-run variants that were disturbed
        if r >= repeats and (time.monotonic() > deadline or not any(_needs_more(v, wanted) for v in samples.values())):
            break
        for v in _EVAL_VARIANTS[r % 4 :] + _EVAL_VARIANTS[: r % 4]:
            if r >= repeats and not _needs_more(samples[v], wanted):
                continue
            s = evaluate(v, r)
            samples[v].append(s)
            extra = {k: s[k] for k in ("examples_dumped", "bytes_written") if k in s}
            print(f"[bench estimator] pass {r + 1} {v:<14} {s['seconds']:6.2f} s {extra}{_others_text(s)}",
                  file=sys.stderr, flush=True)
    # the cost of one eval batch, for the reader: the fixed part is an evaluate() of one batch
    t0 = time.perf_counter()
    plain.evaluate(input_fn, steps=1, name="one_batch")
    one = time.perf_counter() - t0
    base = statistics.median(s["seconds"] for s in _clean(samples["no_hook"]))
    return {
        "samples": samples,
        "images_per_evaluate": batches * batch_size,
        "step_seconds": max(0.0, (base - one) / max(1, batches - 1)),
        "one_batch_evaluate_seconds": one,
        "tensorflow": tf.__version__,
    }


# --------------------------------------------------------------------------- child processes


def _child(argv: list[str]) -> dict[str, Any]:
    """Run ``_child_main(argv)`` in a fresh interpreter; it prints one JSON object as its last stdout line."""
    code = "import sys, exporter.bench as b; raise SystemExit(b._child_main(sys.argv[1:]))"
    out = subprocess.run([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"bench child {argv[0]} failed with exit status {out.returncode} (its stderr is above)")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child_main(argv: Sequence[str]) -> int:
    kind, cfg = argv[0], json.loads(argv[1])
    children = {"pass": _pass_child, "export": _export_child, "measure": _measure_child, "estimator": _estimator_child}
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
    table = [head] + sorted(
        [
            (r.key, r.label, _ratio_text(r.ratio), r.target, "met" if r.met else "NOT MET",
             r.measured + (f"; {r.note}" if r.note else ""))
            for r in results.rows
        ]
        + [(s.key, s.label, "-", s.target, "skipped", s.reason) for s in results.skipped]
    )
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    for row in table:
        cells = [row[i].ljust(widths[i]) if i != 2 else row[i].rjust(widths[i]) for i in range(len(head) - 1)]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
    met = sum(r.met for r in results.rows)
    lines += [
        "",
        (
            f"{met} of {len(results.rows)} measured rows met their target; {len(results.skipped)} skipped; "
            f"{results.seconds:.0f} s"
        ),
    ]
    return "\n".join(lines)


def _ratio_text(ratio: float) -> str:
    """Three decimals below 10x, so a ratio just over a target like 1.05x never prints as the target."""
    return f"{ratio:.2f}x" if ratio >= 10 else f"{ratio:.3f}x"


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``summary-exporter bench``."""
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, no 2 GB run, no Estimator: a smoke test in well under a minute")
    parser.add_argument("--json", metavar="PATH", help="also write the results (rows, raw timings, machine) as JSON")
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help=f"where the >= 2 GB run of the memory rows is kept (default {default_cache_dir()})")
    parser.add_argument("--workdir", metavar="DIR", default=None,
                        help="scratch folder for shards and event files (default: a new temporary folder)")
    parser.add_argument("--skip", action="append", choices=SECTIONS, default=[],
                        help="leave a section out (repeatable)")
    parser.add_argument("--images", type=int, default=None, help="images per export pass of rows 1-3")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved passes of rows 1-3 (median)")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table to stdout (progress to stderr), write JSON if asked; 0 on success."""
    global _T0
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
        f"rows 1-3: {sizes.images} images x {sizes.repeats} interleaved passes (median)"
    )
    results = Results(machine_info(), library_versions(), data, sizes, bool(args.quick))
    own_scratch = args.workdir is None
    scratch = Path(tempfile.mkdtemp(prefix="summary-exporter-bench-")) if own_scratch else Path(args.workdir)
    scratch.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    _say(f"machine: {machine_line(results.machine)}")
    try:
        if "import" not in args.skip:
            bench_import(sizes, results)
        if "export" not in args.skip:
            bench_export(sizes, scratch, results)
        if "memory" not in args.skip:
            bench_memory(sizes, cache, scratch, results, bool(args.quick))
        skip = "--quick" if args.quick else "--skip estimator" if "estimator" in args.skip else None
        bench_estimator(sizes, scratch, results, skip)
        for section, keys in (("export", ("1a", "1b", "1c", "2a", "2b", "3a")), ("memory", ("5a", "5b", "5c")),
                              ("import", ("6",))):
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


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m exporter.bench", description=__doc__.split("\n")[0])
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
