"""One box's keypoints drawn on a Pillow canvas: dots, and skeleton lines between them.

Predicted keypoints are filled dots (the box's colour, a 1 px black rim so they
read on any picture) joined by lines as thick as box lines; ground-truth ones
are hollow rings with thinner lines, so a true pose under a predicted one stays
visible and is never taken for it. A keypoint is not drawn when it is NaN/inf,
outside the panel, or, when it has a score, scored below the threshold (or
NaN); an edge is drawn only when both its ends are, and edges naming a
keypoint beyond P are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import ImageDraw

from .colors import BLACK, Color


def visible_points(
    points: np.ndarray,
    scores: np.ndarray | None,
    threshold: float,
    scale: tuple[float, float],
    bounds: tuple[int, int, int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """(P, 2) canvas pixel centres (int64) of one box's keypoints and the (P,) bool of those drawn."""
    bx0, by0, bx1, by1 = bounds
    with np.errstate(invalid="ignore", over="ignore"):
        xy = points * np.array(scale, dtype=np.float64)
        shown = np.isfinite(xy).all(axis=1)
        shown &= (xy[:, 0] >= 0) & (xy[:, 0] < bx1 - bx0) & (xy[:, 1] >= 0) & (xy[:, 1] < by1 - by0)
        if scores is not None:
            shown &= scores >= threshold  # NaN fails this
    centres = np.zeros(points.shape, dtype=np.int64)
    centres[shown] = np.floor(xy[shown]).astype(np.int64) + [bx0, by0]  # the pixel the point falls in
    return centres, shown


def draw_keypoints(
    draw: ImageDraw.ImageDraw,
    points: np.ndarray,
    color: Color,
    *,
    scores: np.ndarray | None,
    threshold: float,
    edges: Sequence[Sequence[int]] | None,
    scale: tuple[float, float],
    bounds: tuple[int, int, int, int],
    line: int,
    hollow: bool,
) -> None:
    """Draw one box's (P, 2) keypoints (original-image pixels) and its skeleton; ``hollow`` for ground truth.

    ``line`` is the box line width: dots have radius ``line + 2``, predicted skeleton lines are
    ``line`` thick, ground-truth ones half that.
    """
    centres, shown = visible_points(points, scores, threshold, scale, bounds)
    if not shown.any():
        return
    p = points.shape[0]
    width = max(1, line // 2) if hollow else line
    for a, b in edges or ():
        if a < p and b < p and shown[a] and shown[b]:
            draw.line([tuple(centres[a].tolist()), tuple(centres[b].tolist())], fill=color, width=width)
    r = line + 2
    for x, y in centres[shown].tolist():
        box = (x - r, y - r, x + r, y + r)
        if hollow:
            draw.ellipse(box, outline=color, width=max(2, line))
        else:
            draw.ellipse(box, fill=color, outline=BLACK, width=1)
