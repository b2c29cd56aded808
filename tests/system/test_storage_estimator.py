"""EvalDumpHook on a real Estimator (TensorFlow 2.15) writing straight to s3:// (moto): the same dump as on disk."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow_estimator")

from capture.test_estimator import BATCH, CLASSES, _check_dump, _dumped, _estimator, _input_fn, trained

from .test_storage_capture import _FINAL, _bucket, _download, _objects

__all__ = ["trained"]  # the module-scoped fixture, shared with tests/capture/test_estimator.py


def test_hook_in_estimator_evaluate_writes_to_s3(trained, s3_server, tmp_path):
    from exporter.capture.estimator import EvalDumpHook

    hook = EvalDumpHook(
        f"{s3_server}/evals/est",
        {"images": "images:0", "labels": "labels", "probs": "probs:0", "pred_labels": "pred_labels:0"},
        class_names=CLASSES,
        examples_per_shard=4,
    )
    _estimator(trained).evaluate(_input_fn(trained["images"], trained["labels"], BATCH), hooks=[hook])
    bucket = _bucket(s3_server)
    keys = _objects(bucket, "evals/est/")
    assert len(keys) == 4 and all(_FINAL.fullmatch(k[len("evals/est/"):]) for k in keys), sorted(keys)  # 3 + manifest
    run, got = _dumped(_download(bucket, "evals/est/", tmp_path / "copy"))
    _check_dump(run, got, trained)
    assert run.shards()[0].meta.class_names == CLASSES
    assert hook.writer is not None and hook.writer.written == len(trained["images"])
