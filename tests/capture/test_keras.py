"""EvalDumpCallback with a real Keras model: Keras 3 on TF 2.21, tf.keras 2.15 on TF 2.15."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from exporter import ConfigError, open_run  # noqa: E402
from exporter.capture.keras import EvalDumpCallback  # noqa: E402


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 8, 8, 3)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 127.5).astype(np.int32)
    return x, y


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data(64, 0)
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    return m


def _dumped(directory, step=None):
    run = open_run(directory)
    batches = list(run.iter_batches(step))
    return run, {k: np.concatenate([b.arrays[k] for b in batches]) for k in batches[0].arrays}


def test_evaluate_dumps_a_bounded_sample_at_the_optimizer_step(model, tmp_path):
    x, y = _data(40, 1)
    cb = EvalDumpCallback(tmp_path, (x, y), max_examples=20, batch_size=8, class_names=["dark", "bright"])
    model.evaluate(x, y, batch_size=16, verbose=0, callbacks=[cb])
    run, got = _dumped(tmp_path)
    assert run.steps == [int(np.asarray(model.optimizer.iterations))] == [4]
    np.testing.assert_array_equal(got["images"], x[:20])
    np.testing.assert_array_equal(got["labels"], y[:20])
    probs = model.predict(x[:20], verbose=0)
    np.testing.assert_allclose(got["probs"], probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got["pred_labels"], probs.argmax(1))
    np.testing.assert_array_equal(got["ids"], np.arange(20))
    assert run.shards()[0].meta.class_names == ["dark", "bright"]


@pytest.mark.parametrize("step_mode, expected", [("iterations", [4 + 3, 4 + 6]), ("epoch", [1, 2])])
def test_fit_with_validation_data_dumps_every_epoch(tmp_path, step_mode, expected):
    keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data(48, 2)
    m.fit(x[:16], y[:16], epochs=1, batch_size=4, verbose=0)  # 4 iterations before the callback exists
    xv, yv = _data(12, 3)
    cb = EvalDumpCallback(tmp_path, (xv, yv), max_examples=10, step=step_mode)
    m.fit(x, y, epochs=2, batch_size=16, validation_data=(xv, yv), verbose=0, callbacks=[cb])
    run = open_run(tmp_path)
    assert run.steps == expected
    assert [run.num_examples(s) for s in run.steps] == [10, 10]
    first, second = (next(run.iter_batches(s)).arrays for s in run.steps)
    np.testing.assert_array_equal(first["images"], second["images"])  # same examples at every step
    assert not np.allclose(first["probs"], second["probs"])  # ... seen by a model that changed


def test_dataset_input_and_detector_fields_fn_with_an_odapi_dict(model, tmp_path):
    import tensorflow as tf

    x, y = _data(10, 4)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)

    def odapi_fields(xb, yb, y_pred):
        n = len(xb)
        return {
            "original_image": xb.astype(np.uint8),
            "detection_boxes": np.tile([[0.1, 0.2, 0.5, 0.6]], (n, 1, 1)),
            "detection_classes": np.ones((n, 1), np.float32) + y_pred.argmax(1)[:, None],  # 1-based
            "detection_scores": y_pred.max(1)[:, None],
            "num_detections": np.ones(n, np.float32),
        }

    cb = EvalDumpCallback(tmp_path, ds, fields_fn=odapi_fields, max_examples=6)
    model.evaluate(ds, verbose=0, callbacks=[cb])
    _, got = _dumped(tmp_path)
    assert sorted(got) == ["box_labels", "box_scores", "boxes", "ids", "images", "num_boxes"]
    assert got["images"].shape == (6, 8, 8, 3)
    np.testing.assert_array_equal(got["box_labels"][:, 0], model.predict(x[:6], verbose=0).argmax(1))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"step": "batch"}, "step must be"), ({"max_examples": 0}, "max_examples"), ({"every_n_evals": 0}, "every_n_evals")],
)
def test_bad_options(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        EvalDumpCallback(tmp_path, _data(2, 0), **kwargs)
