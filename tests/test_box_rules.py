"""Every reader of a shard's boxes counts the same boxes and the same drawn predictions.

The drawing (``render``), the detector statistics behind the selections
(``metrics.images.image_stats``), ``--changes`` (``changes``) and the
``--max-boxes`` note (``_pipeline.hidden_boxes``) all go through
``render.box_count`` (padding rows) and ``render.drawn_order`` (score threshold,
``max_boxes``, best first), on padding, NaN boxes, NaN scores and equal scores.
"""

from __future__ import annotations

import numpy as np
import pytest

from exporter import changes
from exporter._pipeline import hidden_boxes
from exporter.metrics.images import image_stats, shard_images
from exporter.render import ReadOptions, RenderOptions, read_example
from exporter.render.compose import _kept

N, ROWS = 4, 6


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    corner = rng.uniform(0, 0.6, (N, ROWS, 2))
    boxes = np.concatenate([corner, corner + 0.3], axis=-1)  # yxyx, normalized
    gt = boxes.copy()
    boxes[1, 2] = np.nan  # a box that is not drawn
    scores = rng.uniform(0.05, 1, (N, ROWS))
    scores[2, 0] = np.nan  # a score that is never drawn
    scores[0, :3] = 0.7  # equal scores keep their box order
    return {
        "images": np.zeros((N, 16, 16, 3), np.uint8),
        "boxes": boxes.astype(np.float32),
        "box_scores": scores.astype(np.float32),
        "num_boxes": np.array([6, 4, 9, -1], np.int32),  # all, 4 of 6, beyond the rows, none
        "gt_boxes": gt.astype(np.float32),
        "gt_num_boxes": np.full(N, ROWS, np.int32),
    }


def _drawn_by_renderer(arrays, style: RenderOptions) -> list[int]:
    return [len(_kept(read_example({k: a[i] for k, a in arrays.items()}).pred, style)) for i in range(N)]


@pytest.mark.parametrize("threshold, max_boxes", [(0.0, 100), (0.5, 2), (0.3, 0), (0.95, 3)])
def test_every_reader_draws_and_counts_the_same_predictions(threshold, max_boxes):
    arrays = _arrays()
    style = RenderOptions(score_threshold=threshold, max_boxes=max_boxes)
    drawn = _drawn_by_renderer(arrays, style)
    stats = image_stats(arrays, ReadOptions(), arrays["images"].shape[1:], need={"counts"}, iou=0.5,
                        min_score=threshold, max_boxes=max_boxes)
    assert (stats.tp + stats.fp).tolist() == drawn
    outcomes = changes._detections(arrays, N, "yxyx", "normalized", changes.Rules(0.5, threshold, max_boxes))
    assert outcomes["n_pred"].tolist() == drawn
    uncapped = _drawn_by_renderer(arrays, RenderOptions(score_threshold=threshold, max_boxes=ROWS))
    assert hidden_boxes(arrays, range(N), style, ReadOptions()) == sum(uncapped) - sum(drawn)


def test_the_boxes_of_an_image_are_the_same_for_the_drawing_and_the_metrics():
    arrays = _arrays()
    drawn = _drawn_by_renderer(arrays, RenderOptions(score_threshold=0.0))
    assert drawn == [6, 3, 5, 0]  # 6; 4 rows less the NaN box; 6 of 9 less the NaN score; none
    boxes = [len(im.pred) for im in shard_images(arrays, ReadOptions(), arrays["images"].shape[1:])]
    assert boxes == [6, 3, 6, 0]  # a NaN score is no reason to drop a box here (export refuses such shards first)
    first = read_example({k: a[0] for k, a in arrays.items()})
    order = _kept(first.pred, RenderOptions()).scores
    assert list(order) == sorted(order, reverse=True)
    assert hidden_boxes(arrays, range(N), RenderOptions(max_boxes=2), ReadOptions()) == 4 + 1 + 3


@pytest.mark.parametrize("broken", [
    {"box_scores": np.ones((N, ROWS + 1), np.float32)},  # one score too many per image
    {"num_boxes": np.ones((N, 2), np.int32)},
    {"num_boxes": np.array(["3"] * N)},
])
def test_the_max_boxes_note_counts_as_if_a_field_validation_refuses_were_absent(broken):
    # validation reports these in a shard's first unit; the shard's other units still count, never fail
    arrays = _arrays() | broken
    without = {k: a for k, a in _arrays().items() if k not in broken}
    uncapped = _drawn_by_renderer(without, RenderOptions(max_boxes=ROWS))
    capped = _drawn_by_renderer(without, RenderOptions(max_boxes=1))
    assert hidden_boxes(arrays, range(N), RenderOptions(max_boxes=1), ReadOptions()) == sum(uncapped) - sum(capped) > 0


@pytest.mark.parametrize("boxes", [np.zeros((N, ROWS, 3), np.float32), np.full((N, ROWS, 4), "x")])
def test_the_max_boxes_note_counts_nothing_for_boxes_that_cannot_be_drawn(boxes):
    assert hidden_boxes(_arrays() | {"boxes": boxes}, range(N), RenderOptions(max_boxes=1), ReadOptions()) == 0
