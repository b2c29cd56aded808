"""The ``summary-exporter`` command line: parse, call ``exporter.api``, print.

Bad input gets one ``error: ...`` line on stderr and exit status 1; never a
traceback (``--debug`` shows one for bug reports). Exit statuses: 0 done,
1 error, 2 usage, 3 exported but some shards were skipped (``--skip-bad``),
130 Ctrl-C, 128 + N signal N (143 SIGTERM, 129 SIGHUP).

Importing this module loads only the signal handling and the error classes:
everything else is imported inside ``main``, so a Ctrl-C at start-up lands in
``main``'s handler (one line, exit 130) instead of in an import (a traceback).
"""

from __future__ import annotations

import signal
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._procs import Terminated, exit_on_signals
from ._version import __version__
from .errors import ConfigError, ExporterError, NothingExportedError

if TYPE_CHECKING:
    import argparse

#: Exit status of an export that wrote every readable shard but skipped bad ones (``--skip-bad``).
EXIT_SKIPPED = 3

EPILOG = """\
examples:
  summary-exporter inspect eval_shards
  summary-exporter validate eval_shards
  summary-exporter export eval_shards logs/eval --class-names classes.txt --score-threshold 0.3
  summary-exporter export eval_shards logs/eval_sbs --side-by-side --match-iou 0.5 --workers 2
  summary-exporter render eval_shards overlays --max-per-step 16 --grid
  summary-exporter export eval_shards logs/worst --most-confident-wrong 32
  summary-exporter export eval_shards logs/eval --changes --group-tags class
  summary-exporter export det_shards logs/misses --any-missed --match-iou 0.5 --score-threshold 0.3
  summary-exporter demo demo_out
  summary-exporter bench --quick

Shards are the .npz files written by exporter.ShardWriter, EvalDumpHook or
EvalDumpCallback; SHARDS may be a run folder, one step-* folder or one file.
SHARDS, LOGDIR and OUTDIR may be URLs (s3://bucket/evals/run1, gs://...):
  summary-exporter export s3://evals/run1 s3://tb/run1 --storage-option profile=eval

exit status: 0 done, 1 error, 2 usage, 3 exported but some shards were
skipped (--skip-bad lists them), 130 Ctrl-C, 143 SIGTERM (128 + signal number).
"""
#: The exit statuses, as --help of export and render says them.
EXIT_STATUS_HELP = (
    "exit status: 0 done, 1 error, 2 usage, 3 written but some shards were skipped (--skip-bad lists them),\n"
    "130 Ctrl-C, 143 SIGTERM (128 + signal number)"
)


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _workers(text: str) -> int | str:
    return "auto" if text == "auto" else _positive_int(text)


def _fraction(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value}")
    return value


def _floats(text: str) -> tuple[float, ...]:
    import argparse

    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _id_or_none(text: str) -> int | str:
    """An integer id, or 'none' (for --mask-background: every id is a class)."""
    if text.strip().lower() == "none":
        return "none"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer id or 'none', got {text!r}") from None


def _names(text: str) -> list[str | int]:
    """Comma-separated names or ids: all-digit items become ints (class ids / integer example ids)."""
    import argparse

    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected comma-separated names or ids")
    return [int(t) if t.isdigit() else t for t in items]


def _selection(args: argparse.Namespace):
    """The Selection the 'which examples' flags describe, or None."""
    from .select import Selection

    chosen = dict(
        classes=args.classes,
        misclassified=args.misclassified,
        correct=args.correct,
        min_score=args.min_score,
        max_score=args.max_score,
        most_confident_wrong=args.most_confident_wrong,
        least_confident_correct=args.least_confident_correct,
        per_class=args.per_class,
        ids=args.ids,
        box_classes=args.box_classes,
        any_false_positive=args.any_fp,
        any_missed=args.any_missed,
        worst=args.worst,
        worst_by=args.worst_by,
    )
    chosen = {k: v for k, v in chosen.items() if v not in (None, False)}
    return Selection(**chosen) if chosen else None


def read_class_names(path: str) -> list[str]:
    """Class names from a file: a JSON list, or one name per line (blank lines and # comments skipped)."""
    import json
    from pathlib import Path

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read class names from {path}: {exc.strerror or exc}") from None
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not a valid JSON list of class names ({exc})") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{path}: expected a JSON list of strings")
        return names
    names = [line.strip() for line in text.splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise ConfigError(f"{path}: no class names found (one per line, or a JSON list)")
    return names


def _add_render_options(p: argparse.ArgumentParser) -> None:
    from .schema import BOX_COORDS, BOX_FORMATS, DEFAULT_MAX_BYTES, IMAGE_LAYOUTS

    g = p.add_argument_group("what is drawn")
    g.add_argument("--class-names", metavar="FILE", help="class names, one per line or a JSON list (overrides the shards')")
    g.add_argument("--score-threshold", type=_fraction, default=0.0, metavar="S", help="hide predicted boxes scoring below S (default 0)")
    g.add_argument("--max-boxes", type=_positive_int, default=100, metavar="N", help="draw at most N predicted boxes per image (default 100)")
    g.add_argument("--box-format", choices=BOX_FORMATS, help="override the shards' box format (fix-up for a wrong dump)")
    g.add_argument("--box-coords", choices=BOX_COORDS, help="override the shards' box coordinates")
    g.add_argument("--side-by-side", action="store_true", help="ground truth and prediction as two panels")
    g.add_argument("--match-iou", type=_fraction, metavar="IOU", help="colour boxes as true positive / false positive / missed at this IoU")
    g.add_argument("--mask-alpha", type=_fraction, default=0.5, metavar="A", help="mask opacity (default 0.5)")
    g.add_argument("--mask-outline", action="store_true", help="outline mask regions")
    g.add_argument("--topk", type=int, default=0, metavar="K", help="draw a top-K probability bar under each image (default off)")
    g.add_argument("--no-caption", action="store_true", help="no predicted/true class caption")
    g2 = p.add_argument_group("how images are read")
    g2.add_argument("--layout", choices=IMAGE_LAYOUTS, help="image layout when it cannot be guessed (default: guess)")
    g2.add_argument("--bgr", action="store_true", help="images are BGR (OpenCV order)")
    g2.add_argument("--value-range", type=_floats, metavar="LO,HI", help="pixel value range, e.g. -1,1 (default: guess from dtype and values)")
    g2.add_argument("--mean", type=_floats, metavar="M,M,M", help="undo input normalisation: x * std + mean")
    g2.add_argument("--std", type=_floats, metavar="S,S,S", help="see --mean")
    g2.add_argument("--min-size", type=_positive_int, default=128, metavar="PX", help="upscale smaller images (nearest) to this short side (default 128)")
    g2.add_argument("--mask-background", type=_id_or_none, metavar="ID|none",
                    help="the masks id meaning 'no class here', not drawn (default: the shards' mask_background, else 0; none: draw every id)")
    g3 = p.add_argument_group("which examples")
    g3.add_argument("--max-per-step", type=_positive_int, metavar="N", help="only the first N examples of each step")
    g3.add_argument("--grid", action="store_true", help="also write a contact sheet per step")
    g3.add_argument("--grid-max", type=_positive_int, default=64, metavar="N", help="examples in the contact sheet (default 64)")
    g3.add_argument("--misclassified", action="store_true", help="only examples whose predicted class is wrong")
    g3.add_argument("--correct", action="store_true", help="only examples whose predicted class is right")
    g3.add_argument("--classes", type=_names, metavar="A,B", help="only examples of these true classes (names or ids)")
    g3.add_argument("--min-score", type=_fraction, metavar="S", help="only examples predicted with score >= S")
    g3.add_argument("--max-score", type=_fraction, metavar="S", help="only examples predicted with score <= S")
    g3.add_argument("--most-confident-wrong", type=_positive_int, metavar="K", help="the K most confidently wrong examples per step")
    g3.add_argument("--least-confident-correct", type=_positive_int, metavar="K", help="the K least confident correct examples per step")
    g3.add_argument("--per-class", type=_positive_int, metavar="N", help="at most N examples per true class and step")
    g3.add_argument("--ids", type=_names, metavar="ID,ID", help="only these example ids")
    g3.add_argument("--box-classes", type=_names, metavar="A,B", help="only images with a true or predicted box of these classes")
    g3.add_argument("--any-fp", action="store_true",
                    help="only images with a false positive: a predicted box matching no true box (at --match-iou, default 0.5)")
    g3.add_argument("--any-missed", action="store_true",
                    help="only images with a missed object: a true box no prediction matches (at --match-iou, default 0.5)")
    g3.add_argument("--worst", type=_positive_int, metavar="K", help="the K images with the lowest per-image AP (or see --worst-by)")
    g3.add_argument("--worst-by", choices=("ap", "iou"), help="rank --worst by COCO AP of the image (default) or by the mean best IoU of its true boxes")
    g3.add_argument("--all-dumps", action="store_true", help="read every dump of a step, not only the newest")
    g3.add_argument("--skip-bad", action="store_true",
                    help="skip shards that fail validation and list them, instead of stopping (exit status 3)")
    g3.add_argument("--max-shard-mb", type=_positive_int, default=DEFAULT_MAX_BYTES >> 20, metavar="MB",
                    help=f"refuse shards needing more memory than this (default {DEFAULT_MAX_BYTES >> 20})")
    g3.add_argument("--workers", type=_workers, default="auto", metavar="N|auto",
                    help="render in N processes; auto (default): one per core, but one per 32 images for small "
                    "exports (a worker costs ~10 ms to start, an image 1-3 ms to draw)")
    g3.add_argument("--wait", action="store_true",
                    help="if another summary-exporter is writing the same folder, wait for it (default: fail at once)")
    g3.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_changes_options(p: argparse.ArgumentParser, *, files: bool = False) -> None:
    """``--changes`` and its settings; ``files``: as render writes them (PNG and Markdown files, no tags to group)."""
    g = p.add_argument_group(
        "what changed between checkpoints",
        "Examples are matched across steps by their ids; shards without 'ids' are matched by position in the "
        "step (a warning says so), which is right only when the eval input order is the same at every checkpoint.",
    )
    written = (
        "as step-<step>/changes/fixed/<id>.png and changes/broken/<id>.png (earlier | later picture, headed by step), "
        "and Markdown tables step-<step>/summary/changes.md and summary/worst.md" if files else
        "as changes/fixed/<id> and changes/broken/<id> (earlier | later picture, headed by step), and Markdown tables "
        "summary/changes and summary/worst in the TEXT tab"
    )
    g.add_argument(
        "--changes", action="store_true",
        help="at each step after the first, the examples fixed (wrong -> right) and broken (right -> wrong) since the "
        f"step before, {written}. Detection: fewer / more missed + false boxes at --match-iou (default 0.5), or the "
        "image's AP up / down by more than 0.1. The 'which examples' options pick the examples compared (picked at "
        "either step)" + ("" if files else "; with --incremental the first new step is compared with the last one exported"),
    )
    g.add_argument("--summary-worst", type=int, default=10, metavar="K",
                   help="rows of summary/worst: the K most confidently wrong examples, or worst images (default 10; 0: none)")
    if files:
        return
    g.add_argument(
        "--group-tags", choices=("class", "outcome"),
        help="per-example tags examples/<class>/<id> (true class) or examples/right|wrong/<id> (outcome), to filter "
        "them with TensorBoard's tag regex. Grouping by each step's own outcome would split an example whose outcome "
        "changed across two tags, and the step slider would no longer follow it; so the outcome is the one at the "
        "LAST step exported: an example keeps one tag at every step of an export. A later export where its outcome "
        "changed moves it, all steps together, to the other tag (a running TensorBoard may show the old tag until "
        "restarted). With --incremental, outcome grouping rewrites the run instead of appending",
    )


def _add_export_options(p: argparse.ArgumentParser) -> None:
    """What export (and export-runs) take beyond the drawing options."""
    p.add_argument("--tag-prefix", default="examples", help="prefix of per-example image tags (default 'examples')")
    p.add_argument("--format", choices=("png", "jpeg"), default="png", help="image encoding (default png, lossless)")
    p.add_argument("--jpeg-quality", type=int, default=90, metavar="Q", help="JPEG quality (default 90)")
    p.add_argument("--no-metrics", action="store_true", help="no metric scalars (accuracy, AP, IoU), PR curves or confusion matrix")
    p.add_argument("--incremental", action="store_true",
                   help="export only shards not exported to LOGDIR before (rewrites the run if an older step arrives)")
    p.add_argument("--topk-accuracy", type=_positive_int, default=5, metavar="K", help="also log top-K accuracy when probs exist (default 5)")
    p.add_argument("--ignore-index", type=_id_or_none, default=255, metavar="ID|none",
                   help="true mask pixels with this id count nowhere in the segmentation metrics (default 255; the background is a class)")
    _add_changes_options(p)


def _add_storage_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the URL's file system (fsspec), repeatable: e.g. profile=eval, anon=true, "
                   "endpoint_url=http://minio:9000; values are JSON when they parse. Credentials come from the "
                   "environment or the store's config files, never from here")


def build_parser() -> argparse.ArgumentParser:
    import argparse
    import functools

    from .schema import DEFAULT_MAX_BYTES

    parser = argparse.ArgumentParser(
        prog="summary-exporter",
        description="Render eval shards (images + predictions saved during evaluation) to TensorBoard, PNG files or a report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"summary-exporter {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (for bug reports)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # every command's epilog holds examples laid out by hand
    command = functools.partial(sub.add_parser, formatter_class=argparse.RawDescriptionHelpFormatter)

    p = command(
        "export",
        help="write TensorBoard events: one image tag per example, one step per checkpoint",
        description="Write TensorBoard events from shards: per-example image tags stable across checkpoints, "
        "accuracy / top-k scalars, PR curves and a confusion matrix, COCO detection AP/AR and segmentation IoU "
        "where the fields allow.",
        epilog="example:\n  summary-exporter export eval_shards logs/eval --score-threshold 0.3 --workers 2\n"
        "  tensorboard --logdir logs/eval --samples_per_plugin images=100\n\n" + EXIT_STATUS_HELP,
    )
    p.add_argument("shards", help="run folder, step folder or shard file")
    p.add_argument("logdir", help="TensorBoard run folder to write (earlier exports there are replaced)")
    _add_export_options(p)
    _add_render_options(p)
    _add_storage_option(p)

    p = command(
        "export-runs",
        help="export every run folder under ROOT to the same place under LOGROOT, here or on a Dask cluster",
        description="Export every run folder under ROOT (a folder holding step-* folders) into LOGROOT/<its path "
        "below ROOT>, with the options of export and the same result as one export per run. Without --scheduler "
        "the runs are exported one after another here; with it, one Dask task per run (each with --workers 1).",
        epilog="examples:\n  summary-exporter export-runs eval_root logs\n"
        "  summary-exporter export-runs s3://evals/job7 s3://tb/job7 --scheduler tcp://10.0.0.5:8786\n"
        "  summary-exporter export-runs eval_root logs --scheduler local --incremental\n"
        "  tensorboard --logdir logs",
    )
    p.add_argument("root", help="folder (or URL) whose run folders to export")
    p.add_argument("logroot", help="TensorBoard folder (or URL): each run goes to LOGROOT/<its path below ROOT>")
    p.add_argument("--scheduler", metavar="ADDRESS|local",
                   help="run one Dask task per run: on the scheduler at ADDRESS (tcp://host:8786), or on a local "
                   "cluster started for the job (local); default: one after another in this process")
    p.add_argument("--dask-workers", type=_positive_int, metavar="N",
                   help="with --scheduler local: worker processes (default: one per core, at most one per run)")
    _add_export_options(p)
    _add_render_options(p)
    _add_storage_option(p)

    p = command(
        "render",
        help="write the same overlays as PNG files (a quick look without TensorBoard)",
        epilog="examples:\n  summary-exporter render eval_shards overlays --max-per-step 16 --grid\n"
        "  summary-exporter render eval_shards overlays --changes   # what each checkpoint fixed and broke\n\n"
        + EXIT_STATUS_HELP,
    )
    p.add_argument("shards", help="run folder, step folder or shard file")
    p.add_argument("outdir", help="folder for step-*/<id>.png files")
    _add_render_options(p)
    _add_changes_options(p, files=True)
    _add_storage_option(p)

    p = command("inspect", help="steps, shards, fields, counts, class names, format version",
                epilog="example:\n  summary-exporter inspect eval_shards")
    p.add_argument("shards", help="run folder, step folder or shard file")
    _add_storage_option(p)

    p = command("validate", help="check every shard; exit 0 if all are valid, 1 otherwise",
                epilog="example:\n  summary-exporter validate eval_shards && echo ok")
    p.add_argument("shards", help="run folder, step folder or shard file")
    p.add_argument("--max-shard-mb", type=_positive_int, default=DEFAULT_MAX_BYTES >> 20, metavar="MB",
                   help=f"refuse shards needing more memory than this (default {DEFAULT_MAX_BYTES >> 20})")
    _add_storage_option(p)

    p = command(
        "import-coco",
        help="turn a COCO ground-truth file, a detections results file and the images into shards",
        description="Write shards (format 1.1) from a COCO ground truth, a COCO results list (what detectron2, "
        "MMDetection and YOLO tools write) and the image files: boxes, classes, scores, and where present instance "
        "masks and keypoints. Segmentations need pycocotools: pip install 'summary-exporter[coco]'.",
        epilog="example:\n  summary-exporter import-coco instances_val2017.json detections.json val2017 eval_shards "
        "--step 90000\n  summary-exporter export eval_shards logs/coco --score-threshold 0.3",
    )
    p.add_argument("gt", metavar="GT.json", help="COCO ground truth: images, annotations, categories")
    p.add_argument("results", metavar="RESULTS.json", help="COCO results: a list of {image_id, category_id, bbox, score}")
    p.add_argument("images", metavar="IMAGES_DIR", help="folder the ground truth's file_name entries are in")
    p.add_argument("out", metavar="SHARDS", help="run folder to write the shards into (a new dump of the step)")
    p.add_argument("--step", type=int, default=0, metavar="N", help="global step of the checkpoint evaluated (default 0)")
    p.add_argument("--skip-bad", action="store_true", help="leave out bad images and entries, list them, import the rest")
    p.add_argument("--no-compress", action="store_true", help="store the arrays uncompressed (masks grow ~50x)")
    p.add_argument("--max-shard-mb", type=_positive_int, default=64, metavar="MB",
                   help="arrays per shard, before compression (default 64)")

    p = command(
        "demo",
        help="train a tiny Estimator on generated shapes, capture two checkpoints, export (needs summary-exporter[estimator])",
        epilog="example:\n  summary-exporter demo demo_out && tensorboard --logdir demo_out/logs",
    )
    p.add_argument("outdir", nargs="?", default="demo_out", help="working folder, its shards/ and logs/ are replaced (default demo_out)")
    p.add_argument("--fast", action="store_true", help="fewer training steps (for tests)")

    p = command(
        "bench",
        help="measure export and capture speed as ratios against the usual routes (prints a table)",
        epilog="example:\n  summary-exporter bench --json bench.json\n  summary-exporter bench --quick",
    )
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes, no 2 GB run, no Estimator: a smoke test in well under a minute")
    p.add_argument("--json", metavar="PATH", help="also write the results (rows, raw timings, machine) as JSON")
    p.add_argument("--cache-dir", metavar="DIR", default=None,
                   help="where the >= 2 GB run of the memory rows is kept (default: a folder in the user cache)")
    p.add_argument("--workdir", metavar="DIR", default=None,
                   help="scratch folder for shards and event files (default: a new temporary folder)")
    p.add_argument("--skip", action="append", default=[], metavar="SECTION",
                   help="leave a section out (repeatable; the sections are listed in the table)")
    p.add_argument("--images", type=int, default=None, help="images per export pass of rows 1-3")
    p.add_argument("--repeats", type=int, default=None, help="interleaved passes of rows 1-3 (median)")
    return parser


def _options(args: argparse.Namespace):
    """Build ExportOptions from parsed arguments (import here: Pillow/tensorboardX load only when needed)."""
    from .options import ExportOptions
    from .render import ReadOptions, RenderOptions

    read = ReadOptions(
        class_names=read_class_names(args.class_names) if args.class_names else None,
        box_format=args.box_format,
        box_coords=args.box_coords,
        layout=args.layout,
        bgr=args.bgr,
        value_range=args.value_range,
        mean=args.mean,
        std=args.std,
        mask_background=args.mask_background,
    )
    style = RenderOptions(
        score_threshold=args.score_threshold,
        max_boxes=args.max_boxes,
        side_by_side=args.side_by_side,
        match_iou=args.match_iou,
        mask_alpha=args.mask_alpha,
        mask_outline=args.mask_outline,
        topk=args.topk,
        min_size=args.min_size,
        draw_caption=not args.no_caption,
    )
    extra = {}
    if args.command in ("export", "export-runs"):
        extra = dict(
            tag_prefix=args.tag_prefix,
            image_format=args.format,
            jpeg_quality=args.jpeg_quality,
            metrics=not args.no_metrics,
            topk=args.topk_accuracy,
            changes=args.changes,
            summary_worst=args.summary_worst,
            group_tags=args.group_tags,
            ignore_index=None if args.ignore_index == "none" else args.ignore_index,
        )
    elif args.command == "render":
        extra = dict(changes=args.changes, summary_worst=args.summary_worst)
    return ExportOptions(
        read=read,
        render=style,
        max_per_step=args.max_per_step,
        grid=args.grid,
        grid_max=args.grid_max,
        workers=args.workers,
        skip_bad=args.skip_bad,
        dumps="all" if args.all_dumps else "latest",
        select=_selection(args),
        max_shard_bytes=args.max_shard_mb << 20,
        **extra,
    )


def _run(args: argparse.Namespace) -> int:
    from . import api

    storage_options = _storage_options(args)
    if args.command == "inspect":
        print(api.inspect(args.shards, storage_options=storage_options))
        return 0
    if args.command == "validate":
        problems = api.validate(args.shards, max_bytes=args.max_shard_mb << 20, storage_options=storage_options)
        for problem in problems:  # one line per problem, whatever the file name holds
            warn = problem.level == "warning"  # valid, but worth a word: on stderr, so stdout lists what fails
            print("warning: " * warn + str(problem).replace("\n", "\\n"), file=sys.stderr if warn else sys.stdout)
        files = len(api.shard_files(args.shards, storage_options=storage_options))
        bad = len({p.path for p in problems if p.level == "error"})
        print(f"{files} shard(s) checked: {files - bad} valid, {bad} with problems", file=sys.stderr)
        return 1 if bad else 0
    if args.command == "export":
        try:
            report = api.export(
                args.shards, args.logdir, _options(args), progress=not args.no_progress,
                incremental=args.incremental, wait=args.wait, storage_options=storage_options,
            )
        except NothingExportedError as exc:
            for problem in exc.bad:
                print(f"skipped: {problem}", file=sys.stderr)
            raise
        if report.mode is api.ExportMode.UP_TO_DATE:
            print(f"{args.logdir} is up to date: no new shards")
            return 0
        for problem in report.bad:
            print(f"skipped: {problem}", file=sys.stderr)
        print(f"wrote {report.images} images under {report.tags} tags for steps {report.steps} to {report.logdir}")
        for found in report.changes:
            print(f"changes at {found}: IMAGES tab, filter 'changes/'; tables: TEXT tab, summary/changes")
        print(f"view them with:\n  {report.tensorboard_command}")
        return EXIT_SKIPPED if report.bad else 0
    if args.command == "export-runs":
        runs = api.export_runs(
            args.root, args.logroot, _options(args), scheduler=args.scheduler, progress=not args.no_progress,
            incremental=args.incremental, storage_options=storage_options, cluster_workers=args.dask_workers,
        )
        print(runs, file=sys.stderr if runs.failed else sys.stdout)
        if not runs.failed:
            print(f"view them with:\n  tensorboard --logdir {runs.logroot}")
        return 1 if runs.failed else 0
    if args.command == "render":
        paths = api.render(args.shards, args.outdir, _options(args), progress=not args.no_progress, wait=args.wait,
                           storage_options=storage_options)
        tables = sum(str(path).endswith(".md") for path in paths)
        pngs = len(paths) - tables
        print(f"wrote {pngs} PNG file{'' if pngs == 1 else 's'}"
              + (f" and {tables} Markdown table{'' if tables == 1 else 's'}" if tables else "") + f" under {args.outdir}")
        return EXIT_SKIPPED if paths.bad else 0
    if args.command == "import-coco":
        from .coco import import_coco

        imported = import_coco(args.gt, args.results, args.images, args.out, step=args.step,
                               skip_bad=args.skip_bad, compress=not args.no_compress,
                               max_shard_bytes=args.max_shard_mb << 20)
        for line in imported.skipped:
            print(f"skipped: {line}", file=sys.stderr)
        print(imported)
        return 0
    if args.command == "bench":
        from .bench import run as run_bench

        return run_bench(args)
    if args.command == "demo":
        from pathlib import Path

        from .demo import run_demo

        return run_demo(Path(args.outdir), fast=args.fast)
    raise ConfigError(f"unknown command {args.command!r}")


def _storage_options(args: argparse.Namespace) -> dict | None:
    """``--storage-option`` items as a dict (None when none were given or the command takes none)."""
    from .storage import parse_storage_options

    items = getattr(args, "storage_option", None)
    return parse_storage_options(items) if items else None


#: Warnings addressed to developers, never printed by the command line (the library issues none but
#: DeprecationWarning; the others come from the libraries it imports).
_DEVELOPER_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning, ImportWarning, ResourceWarning)


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Library warnings as one ``warning: ...`` line each, once, without Python's source-line noise."""
    seen = set()
    for w in caught:
        # not for this command's user: deprecations (the library's own included), notices to developers
        # from libraries we import (google.api_core's Python end-of-life FutureWarning, which tensorboardX's
        # import of google-cloud-storage triggers when installed), unclosed files an interrupted import leaves
        if issubclass(w.category, _DEVELOPER_WARNINGS):
            continue
        text = str(w.message)
        if text not in seen:
            seen.add(text)
            print(f"warning: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: exit status 0 on success, 1 on an error (one ``error:`` line), 2 on usage,
    3 when ``--skip-bad`` skipped shards, 130 on Ctrl-C, 128 + N on signal N (143 for SIGTERM), each
    with one line and no traceback: from its first statement on, everything runs inside the handlers."""
    args = None
    caught = None
    try:
        with exit_on_signals(interrupt=True) as caught:
            for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 must print, not crash
                if hasattr(stream, "reconfigure"):
                    stream.reconfigure(errors="backslashreplace")
            parser = build_parser()
            args = parser.parse_args(argv)
            if args.command is None:
                parser.print_help()
                return 2
            with warnings.catch_warnings(record=True) as recorded:
                warnings.simplefilter("always")
                try:
                    return _run(args)
                except BaseException:
                    if caught.signum is not None:
                        recorded.clear()  # an interrupted run says that, and only that
                    raise
                finally:
                    _print_warnings(recorded)
    except BaseException as exc:
        if caught is not None and caught.signum is not None:
            # Ctrl-C or a signal, whatever it became on its way up (an import of a C extension makes an
            # ImportError of it): one line, and the status a shell gives a process killed by that signal
            print("interrupted" if caught.signum == signal.SIGINT else str(Terminated(caught.signum)), file=sys.stderr)
            return 128 + caught.signum
        if isinstance(exc, KeyboardInterrupt):  # raised by a caller's own handler, or before ours was set
            print("interrupted", file=sys.stderr)
            return 130
        if isinstance(exc, Terminated):
            print(str(exc), file=sys.stderr)
            return 128 + exc.signum
        if not isinstance(exc, (ExporterError, OSError)) or (args is not None and args.debug):
            raise
        message = str(exc) if isinstance(exc, ExporterError) else f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
        print(f"error: {message}", file=sys.stderr)
        return 1
