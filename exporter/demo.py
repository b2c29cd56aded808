"""A self-contained demo: synthetic shapes, a tiny Estimator, two dumped evaluations.

``make_shapes`` draws the data set with numpy alone (no downloads); ``model_fn``
and ``input_fn`` are an ordinary ``tf.estimator`` model over it; ``run_capture``
trains to two checkpoints and evaluates each with an ``EvalDumpHook``, so the
shard folder it returns holds two global steps to compare in TensorBoard.

Importing this module imports numpy only; TensorFlow is imported by the
functions that build or run the model.

Class ids: ``labels``, ``gt_box_labels``, ``pred_labels`` and ``box_labels``
index ``CLASS_NAMES`` (0-based). The class maps ``gt_masks`` and ``masks`` index
``MASK_CLASS_NAMES``, where 0 is background, so shape class ``c`` is ``c + 1``.

The model is a classifier, a detector and a segmenter at once: its box head
predicts one box per image (``boxes``, scored and labelled by the class head),
its guess at the largest shape, so the export's COCO box metrics
(``metrics/detection/*``) measure it against every true shape (1 to 3 per
image: recall stays below 1 by design); its mask head gives the class maps
behind ``metrics/segmentation/*`` (background is a class there, as in VOC).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._checks import check_int

CLASS_NAMES = ["circle", "square", "triangle"]
MASK_CLASS_NAMES = ["background", *CLASS_NAMES]

#: Fields ``model_fn`` names with ``tf.identity`` (fetch them as ``"<name>:0"``).
TENSOR_NAMES = (
    "images",
    "ids",
    "labels",
    "probs",
    "pred_labels",
    "pred_scores",
    "boxes",
    "box_labels",
    "box_scores",
    "masks",
    "gt_boxes",
    "gt_box_labels",
    "gt_num_boxes",
    "gt_masks",
)
_FEATURE_KEYS = ("images", "ids")
_LABEL_KEYS = ("labels", "gt_boxes", "gt_box_labels", "gt_num_boxes", "gt_masks")

# Shapes may overlap, but a box may share at most this fraction of the smaller box,
# and a shape must keep this fraction of its pixels visible, so every shape stays recognisable.
_MAX_BOX_OVERLAP = 0.25
_MIN_VISIBLE = 0.4
_PLACEMENT_TRIES = 30


# --------------------------------------------------------------------------- data


def make_shapes(n: int, *, size: int = 64, seed: int = 0, max_shapes: int = 3) -> dict[str, np.ndarray]:
    """``n`` synthetic images of 1..``max_shapes`` filled circles, squares and triangles.

    Returns the canonical fields ``images`` (n,size,size,3) uint8, ``labels``
    (n,) int32 (class of the largest shape, by pixel count), ``gt_boxes``
    (n,max_shapes,4) float32 normalized yxyx, largest shape first, zero rows
    as padding; ``gt_box_labels`` (n,max_shapes) int32, -1 as padding;
    ``gt_num_boxes`` (n,) int32; ``gt_masks`` (n,size,size) int32 indexing
    ``MASK_CLASS_NAMES``; ``ids`` (n,) str like ``"shape-00042"``.

    Each box bounds the visible pixels of its shape exactly: pixel rows
    ``y0..y1`` become ``y0/size .. (y1+1)/size``. Shapes are ``size/5`` to
    ``size/2`` across, drawn smallest first, so the largest is never hidden.
    Example ``i`` depends only on ``(seed, i)``: a larger ``n`` extends a
    smaller one.

    >>> data = make_shapes(4, seed=1)
    >>> data["images"].shape, data["gt_boxes"].shape, data["ids"][2]
    ((4, 64, 64, 3), (4, 3, 4), 'shape-00002')
    """
    n = check_int(n, "n", minimum=0)
    size = check_int(size, "size", minimum=10)
    max_shapes = check_int(max_shapes, "max_shapes", minimum=1)
    out: dict[str, np.ndarray] = {
        "images": np.zeros((n, size, size, 3), np.uint8),
        "labels": np.zeros((n,), np.int32),
        "gt_boxes": np.zeros((n, max_shapes, 4), np.float32),
        "gt_box_labels": np.full((n, max_shapes), -1, np.int32),
        "gt_num_boxes": np.zeros((n,), np.int32),
        "gt_masks": np.zeros((n, size, size), np.int32),
        "ids": np.array([f"shape-{i:05d}" for i in range(n)], dtype=str).reshape(n),
    }
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        image, mask, boxes, classes = _draw_example(rng, size, max_shapes, yy, xx)
        k = len(classes)
        out["images"][i] = image
        out["gt_masks"][i] = mask
        out["gt_boxes"][i, :k] = boxes
        out["gt_box_labels"][i, :k] = classes
        out["gt_num_boxes"][i] = k
        out["labels"][i] = classes[0]
    return out


def _draw_example(rng: np.random.Generator, size: int, max_shapes: int, yy: np.ndarray, xx: np.ndarray):
    """One image: (image, class map, boxes largest first, classes largest first)."""
    lo, hi = max(2, round(size / 5)), max(3, size // 2)
    placed: list[tuple[int, int, int, int]] = []  # (class, y0, x0, side)
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        cls, side = int(rng.integers(len(CLASS_NAMES))), int(rng.integers(lo, hi + 1))
        for _ in range(_PLACEMENT_TRIES):
            y0, x0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
            if all(_overlap(y0, x0, side, py, px, ps) <= _MAX_BOX_OVERLAP for _, py, px, ps in placed):
                placed.append((cls, y0, x0, side))
                break
    flips = rng.random(len(placed)) < 0.5  # triangles point up or down
    colours = [_bright_colour(rng) for _ in placed]
    shapes = [_shape_pixels(cls, y0, x0, side, flip, yy, xx) for (cls, y0, x0, side), flip in zip(placed, flips, strict=True)]

    background = rng.integers(0, 50, size=3).astype(np.float32)
    image = np.empty((size, size, 3), np.float32)
    image[:] = background + rng.normal(0.0, 10.0, size=(size, size, 3)).astype(np.float32)
    # Smallest first, so the largest lies on top and the label's shape is always whole.
    order = sorted(range(len(shapes)), key=lambda j: (int(shapes[j].sum()), j))
    owner = np.full((size, size), -1, np.int64)
    for j in order:
        owner[shapes[j]] = j
    visible = [owner == j for j in range(len(shapes))]
    keep = [j for j in order if visible[j].sum() >= _MIN_VISIBLE * shapes[j].sum()]
    if len(keep) < len(order):  # a shape mostly hidden: leave it out altogether
        owner[:] = -1
        for j in keep:
            owner[shapes[j]] = j
        visible = [owner == j for j in range(len(shapes))]
    mask = np.zeros((size, size), np.int32)
    for j in keep:
        image[visible[j]] = colours[j]
        mask[visible[j]] = placed[j][0] + 1
    image += rng.normal(0.0, 6.0, size=image.shape).astype(np.float32)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)

    largest_first = keep[::-1]
    boxes = np.array([_tight_box(visible[j], size) for j in largest_first], np.float32).reshape(-1, 4)
    classes = np.array([placed[j][0] for j in largest_first], np.int32)
    return image, mask, boxes, classes


def _overlap(y0: int, x0: int, s: int, py: int, px: int, ps: int) -> float:
    """Intersection of two square boxes as a fraction of the smaller one."""
    dy = min(y0 + s, py + ps) - max(y0, py)
    dx = min(x0 + s, px + ps) - max(x0, px)
    return max(dy, 0) * max(dx, 0) / min(s, ps) ** 2


def _bright_colour(rng: np.random.Generator) -> np.ndarray:
    """Any hue, but one channel bright, so shapes stand out of the dark background."""
    c = rng.integers(30, 256, size=3)
    c[rng.integers(3)] = rng.integers(170, 256)
    return c.astype(np.float32)


def _shape_pixels(cls: int, y0: int, x0: int, s: int, flip: bool, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Boolean pixel mask of one shape filling the ``s`` x ``s`` square at (y0, x0); pixel centres are integers."""
    name = CLASS_NAMES[cls]
    cy, cx = y0 + (s - 1) / 2, x0 + (s - 1) / 2
    if name == "circle":
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= (s / 2) ** 2
    inside = (yy >= y0) & (yy <= y0 + s - 1) & (xx >= x0) & (xx <= x0 + s - 1)
    if name == "square":
        return inside
    # Isosceles triangle: apex at the middle of one edge, base along the opposite edge.
    depth = (y0 + s - 1 - yy) if flip else (yy - y0)
    return inside & (np.abs(xx - cx) <= depth / 2 + 1e-3)


def _tight_box(pixels: np.ndarray, size: int) -> list[float]:
    """Normalized yxyx box around the True pixels: rows y0..y1 → y0/size .. (y1+1)/size."""
    rows, cols = np.flatnonzero(pixels.any(1)), np.flatnonzero(pixels.any(0))
    return [rows[0] / size, cols[0] / size, (rows[-1] + 1) / size, (cols[-1] + 1) / size]


# --------------------------------------------------------------------------- model


def _tf():
    """TensorFlow, imported quietly (the C++ log level must be set before the first import)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


def input_fn(data: Mapping[str, np.ndarray], *, batch_size: int, shuffle: bool, repeat: bool, seed: int = 0):
    """A ``tf.data.Dataset`` of ``(features, labels)`` batches from ``make_shapes`` output.

    features: ``images``, ``ids``; labels: ``labels``, ``gt_boxes``,
    ``gt_box_labels``, ``gt_num_boxes``, ``gt_masks``.

    >>> data = make_shapes(256)
    >>> train = lambda: input_fn(data, batch_size=16, shuffle=True, repeat=True)
    >>> estimator.train(train, max_steps=100)   # doctest: +SKIP
    """
    tf = _tf()
    features = {k: np.asarray(data[k]) for k in _FEATURE_KEYS}
    labels = {k: np.asarray(data[k]) for k in _LABEL_KEYS}
    ds = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle:
        ds = ds.shuffle(len(features["images"]), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size, drop_remainder=False).prefetch(2)


def model_fn(features, labels, mode, params):
    """A tiny CNN with a class head, one box for the largest shape, and a coarse class map.

    ``params`` (all optional): ``learning_rate`` (default 3e-3),
    ``box_loss_weight`` (5.0), ``mask_loss_weight`` (1.0), and
    ``make_eval_hooks``: a function taking ``{field: tensor}`` (the names in
    ``TENSOR_NAMES`` present in this mode) and returning a list of hooks for
    ``EstimatorSpec(evaluation_hooks=...)`` -- the tensor-object path of
    ``EvalDumpHook``:

    >>> params = {"make_eval_hooks": lambda t: [EvalDumpHook("shards", t, class_names=CLASS_NAMES)]}  # doctest: +SKIP
    >>> tf.estimator.Estimator(model_fn, params=params).evaluate(eval_input)                          # doctest: +SKIP

    Every field is named with ``tf.identity`` (fetch ``"probs:0"`` etc.); the
    ground-truth ones exist when labels are given (TRAIN, EVAL). PREDICT
    returns the other fields as predictions.
    """
    tf = _tf()
    params = dict(params or {})
    layers = tf.keras.layers
    num_classes, num_mask_classes = len(CLASS_NAMES), len(MASK_CLASS_NAMES)

    images = tf.identity(features["images"], name="images")
    ids = tf.identity(features["ids"], name="ids")
    x = tf.cast(images, tf.float32) / 255.0
    height_width = tf.shape(images)[1:3]

    c1 = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv1")(x)  # 1/2
    c2 = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv2")(c1)  # 1/4
    c3 = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv3")(c2)
    c4 = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu", name="conv4")(c3)  # 1/8
    c5 = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv5")(c4)
    pooled = tf.concat([tf.reduce_mean(c5, axis=[1, 2]), tf.reduce_max(c5, axis=[1, 2])], axis=1)
    hidden = layers.Dense(64, activation="relu", name="fc")(layers.Flatten()(layers.MaxPooling2D(2)(c5)))
    hidden = tf.concat([hidden, pooled], axis=1)

    class_logits = layers.Dense(num_classes, name="class_logits")(hidden)
    box = layers.Dense(4, activation="sigmoid", name="box")(hidden)
    mask_logits_coarse = layers.Conv2D(num_mask_classes, 1, name="mask_logits")(c3)  # at 1/4 resolution
    mask_logits = tf.image.resize(mask_logits_coarse, height_width, method="bilinear")

    probs = tf.nn.softmax(class_logits, name="probs")
    pred_labels = tf.cast(tf.argmax(probs, axis=1), tf.int32, name="pred_labels")
    pred_scores = tf.reduce_max(probs, axis=1, name="pred_scores")
    tensors = {
        "images": images,
        "ids": ids,
        "probs": probs,
        "pred_labels": pred_labels,
        "pred_scores": pred_scores,
        "boxes": tf.identity(box[:, None, :], name="boxes"),
        "box_labels": tf.identity(pred_labels[:, None], name="box_labels"),
        "box_scores": tf.identity(pred_scores[:, None], name="box_scores"),
        "masks": tf.cast(tf.argmax(mask_logits, axis=-1), tf.int32, name="masks"),
    }
    if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(mode, predictions=tensors)

    for key in _LABEL_KEYS:
        tensors[key] = tf.identity(labels[key], name=key)
    class_loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tensors["labels"], logits=class_logits)
    )
    box_loss = tf.reduce_mean(tf.abs(box - tf.cast(tensors["gt_boxes"][:, 0, :], tf.float32)))  # largest box only
    mask_loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tensors["gt_masks"], logits=mask_logits)
    )
    loss = (
        class_loss
        + params.get("box_loss_weight", 5.0) * box_loss
        + params.get("mask_loss_weight", 1.0) * mask_loss
    )

    if mode == tf.estimator.ModeKeys.TRAIN:
        optimizer = tf.compat.v1.train.AdamOptimizer(params.get("learning_rate", 3e-3))
        train_op = optimizer.minimize(loss, global_step=tf.compat.v1.train.get_global_step())
        return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

    metrics = {
        "accuracy": tf.compat.v1.metrics.accuracy(tensors["labels"], pred_labels),
        "box_l1": tf.compat.v1.metrics.mean(box_loss),
        "mask_accuracy": tf.compat.v1.metrics.accuracy(tensors["gt_masks"], tensors["masks"]),
    }
    make_hooks: Callable[[dict[str, Any]], list] | None = params.get("make_eval_hooks")
    hooks = list(make_hooks(dict(tensors))) if make_hooks is not None else []
    return tf.estimator.EstimatorSpec(mode, loss=loss, eval_metric_ops=metrics, evaluation_hooks=hooks)


# --------------------------------------------------------------------------- run


def run_capture(
    workdir: str | os.PathLike,
    *,
    train_steps: tuple[int, ...] = (150, 300),
    train_examples: int = 1024,
    eval_examples: int = 64,
    batch_size: int = 16,
    seed: int = 0,
    progress: Callable[[str], None] = print,
) -> Path:
    """Train the demo model to each of ``train_steps`` and dump an evaluation at each; return the shard folder.

    The model lives in ``workdir/model``; shards land in ``workdir/shards``,
    one ``step-*`` folder per checkpoint (``mask_class_names`` in the
    shard metadata names the mask classes). A few seconds per hundred steps on a
    laptop CPU.

    >>> shards = run_capture(Path("demo-run"))   # doctest: +SKIP
    >>> open_run(shards).steps                   # doctest: +SKIP
    [150, 300]
    """
    steps = [int(s) for s in train_steps]
    if not steps or any(s <= 0 for s in steps) or steps != sorted(set(steps)):
        raise ValueError(f"train_steps must be increasing positive step numbers, got {tuple(train_steps)!r}")
    tf = _tf()
    from .capture.estimator import EvalDumpHook

    workdir = Path(workdir)
    shard_dir = workdir / "shards"
    train_data = make_shapes(train_examples, seed=seed)
    eval_data = make_shapes(eval_examples, seed=seed + 1_000_003)  # disjoint from the training images

    config = tf.estimator.RunConfig(
        model_dir=str(workdir / "model"),
        tf_random_seed=seed,
        save_checkpoints_steps=10 * steps[-1],  # train() saves at its end: one checkpoint per stage
        save_checkpoints_secs=None,
        keep_checkpoint_max=len(steps) + 1,
        log_step_count_steps=10 * steps[-1],
        save_summary_steps=10 * steps[-1],
    )
    estimator = tf.estimator.Estimator(model_fn, config=config, params={})
    hook = EvalDumpHook(
        shard_dir,
        {name: f"{name}:0" for name in TENSOR_NAMES},
        class_names=CLASS_NAMES,
        image_layout="HWC",
        image_range=(0, 255),
        mask_class_names=MASK_CLASS_NAMES,
        meta={"demo": "shapes"},
    )

    def train_input():
        return input_fn(train_data, batch_size=batch_size, shuffle=True, repeat=True, seed=seed)

    def eval_input():
        return input_fn(eval_data, batch_size=batch_size, shuffle=False, repeat=False)

    for target in steps:
        start = time.monotonic()
        progress(f"training to step {target} ...")
        estimator.train(train_input, max_steps=target)
        metrics = estimator.evaluate(eval_input, hooks=[hook])
        progress(
            f"step {int(metrics['global_step'])}: accuracy {metrics['accuracy']:.2f}, "
            f"mask accuracy {metrics['mask_accuracy']:.2f}, box L1 {metrics['box_l1']:.3f} "
            f"({time.monotonic() - start:.1f} s)"
        )
    progress(f"shards written to {shard_dir}")
    return shard_dir


def run_demo(outdir: str | os.PathLike, *, fast: bool = False, progress: Callable[[str], None] = print) -> int:
    """``summary-exporter demo``: capture two checkpoints, export them to TensorBoard, write a contact sheet.

    Leaves ``outdir/shards`` (the dumps), ``outdir/logs/shapes`` (TensorBoard events, with
    ``--changes``: what the second checkpoint fixed and broke) and ``outdir/contact_sheet.png``
    (both checkpoints' first examples, side by side).
    """
    from . import api
    from .render import ReadOptions, RenderOptions, render_example, render_grid
    from .shards import open_run

    outdir = Path(outdir)
    if (outdir / "shards").exists():
        import shutil

        shutil.rmtree(outdir / "shards")  # a fresh demo each time: old dumps would mix in as older dumps
    start = time.monotonic()
    if fast:
        shards = run_capture(outdir, train_steps=(60, 120), train_examples=256, eval_examples=96, progress=progress)
    else:
        shards = run_capture(outdir, progress=progress)
    progress(api.inspect(shards).__str__())
    logdir = outdir / "logs" / "shapes"
    options = api.ExportOptions(render=RenderOptions(mask_alpha=0.35, topk=3), grid=True, grid_max=16, changes=True)
    report = api.export(shards, logdir, options, progress=True)

    # the contact sheet: the same 8 examples at each checkpoint, one row per checkpoint
    run = open_run(shards)
    sheet_style, sheet_read = RenderOptions(mask_alpha=0.35, min_size=96), ReadOptions(class_names=CLASS_NAMES)
    cells = []
    for step in run.steps:
        batch = next(run.iter_batches(step))
        for i in range(min(8, len(batch))):
            cells.append(render_example({k: v[i] for k, v in batch.arrays.items()}, sheet_style, sheet_read))
    sheet = render_grid(cells, cols=min(8, len(cells) // max(1, len(run.steps))))
    sheet_path = outdir / "contact_sheet.png"
    sheet.save(sheet_path)
    progress(
        f"\nexported {report.images} images for steps {report.steps} in {time.monotonic() - start:.0f} s\n"
        f"  contact sheet: {sheet_path}  (top row: step {run.steps[0]}, bottom row: step {run.steps[-1]})\n"
        f"{WHERE_TO_LOOK}"
        f"    {report.tensorboard_command}\n"
        + "".join(
            f"  what changed from step {c.previous} to step {c.step}: {c.fixed} examples fixed, {c.broken} broken\n"
            f"    IMAGES tab, filter 'changes/': changes/fixed/<id>, changes/broken/<id> (step {c.previous} left)\n"
            f"    TEXT tab: summary/changes (per class, with ids), summary/worst (most confidently wrong)\n"
            for c in report.changes
        )
    )
    return 0


#: What the demo's printout says is where in TensorBoard.
WHERE_TO_LOOK = """\
  in TensorBoard:
    IMAGES      one 'examples/shape-NNNNN' tag per example: drag the step slider to see it change
                between checkpoints; the dashed boxes are the true shapes, the solid one the model's
    SCALARS     metrics/accuracy (the class of the largest shape);
                metrics/detection/mAP, AP50, AR100, ... and metrics/detection/AP/<class>: COCO box AP of
                the model's one box per image (its guess at the largest shape) against every true shape;
                metrics/segmentation/mean_iou, pixel_accuracy, IoU/<class>: the predicted class map
    PR CURVES   pr_curve/<class> (classification) and pr_curve/detection/<class> (boxes, IoU 0.5)
"""
