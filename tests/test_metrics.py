from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.tansu import free_port
from streammem.metrics import DEAD_LETTER_REASONS, ServiceMetrics


def scrape(port: int) -> list:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return list(text_string_to_metric_families(response.read().decode()))


def test_endpoint_serves_every_instrument_on_loopback():
    metrics = ServiceMetrics()
    model = ("events", "0")
    metrics.record_batch([0.01, 0.5, 40.0], alerts=1, seconds=0.004, threshold=2.5, model=model)
    metrics.record_training(3, {"reconstruction": 0.2, "entropy": 0.01}, 0.4, model=model)
    metrics.record_checkpoint()
    metrics.consumer_lag.labels("events", "0").set(12)
    port = free_port()
    server = metrics.serve(port)
    try:
        assert server.server_address[0] == "127.0.0.1"
        families = {family.name: family for family in scrape(port)}
    finally:
        server.shutdown()
        server.server_close()
    assert all(name.startswith("streammem_") for name in families)
    expected = {
        "streammem_events",
        "streammem_alerts",
        "streammem_dead_letters",
        "streammem_score",
        "streammem_threshold",
        "streammem_batch_seconds",
        "streammem_model_updates",
        "streammem_training_loss",
        "streammem_memory_slot_usage",
        "streammem_checkpoint_age_seconds",
        "streammem_consumer_lag",
        "streammem_broker_retries",
        "streammem_checkpoint_fallbacks",
    }
    assert expected <= set(families)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("streammem_events_total", ())] == 3
    assert samples[("streammem_model_updates_total", ())] == 3
    loss = (("loss", "entropy"), ("partition", "0"), ("topic", "events"))
    assert samples[("streammem_training_loss", loss)] == 0.01
    assert samples[("streammem_score_bucket", (("le", "+Inf"),))] == 3
    assert 0 <= samples[("streammem_checkpoint_age_seconds", ())] < 60
    reasons = {dict(s.labels)["reason"] for s in families["streammem_dead_letters"].samples}
    assert reasons == set(DEAD_LETTER_REASONS)


def test_checkpoint_age_is_negative_before_the_first_checkpoint():
    registry = ServiceMetrics().registry
    assert registry.get_sample_value("streammem_checkpoint_age_seconds") == -1.0


def test_unknown_dead_letter_reasons_are_refused_to_keep_labels_bounded():
    with pytest.raises(ValueError, match="unknown dead-letter reason"):
        ServiceMetrics().record_dead_letter("KeyError: 'user-1234'")


def test_two_instances_do_not_collide():
    first, second = ServiceMetrics(), ServiceMetrics()
    first.events.inc(5)
    assert second.registry.get_sample_value("streammem_events_total") == 0
