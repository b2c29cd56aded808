"""Reading exported events back with TensorBoard's own reader, for the tests."""

from __future__ import annotations

import io

from PIL import Image


def read_events(logdir):
    """An ``EventAccumulator`` over ``logdir`` that keeps every image, scalar and tensor."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def decode(data: bytes) -> Image.Image:
    """An encoded image, fully decoded (so a broken one fails here)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img
