"""The latency statistics of the deployable-student row (``deployable_student`` itself is tested on
the trained students of ``test_onnx_parity.py``)."""
from dicod_d2.export.deployable import latency_ms


def test_latency_percentiles():
    calls = []
    stats = latency_ms(lambda image: calls.append(image), list(range(10)), warmup=2)
    assert len(calls) == 12 and stats["images"] == 10
    assert 0 <= stats["p50"] <= stats["p90"] and stats["mean"] >= 0
