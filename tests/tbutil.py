"""Reading exported events back with TensorBoard's own reader, for the tests."""

from __future__ import annotations

import hashlib
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


def pixels(event) -> tuple[int, int, str, str]:
    """An image event's content: width, height, mode and a hash of its decoded pixels.

    What tests compare when two exports must show the same image: the PNG's bytes are not the
    contract. ISA-L (the ``fast`` extra's deflate) was seen to encode the same filtered rows two
    valid ways in two processes, once in a few dozen runs under load; the pixels were equal.
    """
    img = decode(event.encoded_image_string)
    return img.width, img.height, img.mode, hashlib.sha256(img.tobytes()).hexdigest()
