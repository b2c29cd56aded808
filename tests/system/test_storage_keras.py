"""EvalDumpCallback with a real Keras model writing straight to s3:// (moto): the same dump as on disk."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from capture.test_keras import _data, _dumped, model

from .test_storage_capture import _FINAL, _bucket, _download, _objects

__all__ = ["model"]  # the module-scoped fixture, shared with tests/capture/test_keras.py


def test_callback_in_evaluate_writes_to_s3(model, s3_server, tmp_path):
    from exporter.capture.keras import EvalDumpCallback

    x, y = _data(40, 1)
    cb = EvalDumpCallback(f"{s3_server}/evals/keras", (x, y), max_examples=20, batch_size=8,
                          class_names=["dark", "bright"], examples_per_shard=8)
    model.evaluate(x, y, batch_size=16, verbose=0, callbacks=[cb])
    bucket = _bucket(s3_server)
    keys = _objects(bucket, "evals/keras/")
    assert len(keys) == 4 and all(_FINAL.fullmatch(k[len("evals/keras/"):]) for k in keys), sorted(keys)
    run, got = _dumped(_download(bucket, "evals/keras/", tmp_path / "copy"))
    assert run.steps == [int(np.asarray(model.optimizer.iterations))]
    np.testing.assert_array_equal(got["images"], x[:20])
    np.testing.assert_array_equal(got["ids"], np.arange(20))
    np.testing.assert_allclose(got["probs"], model.predict(x[:20], verbose=0), rtol=1e-5, atol=1e-6)
