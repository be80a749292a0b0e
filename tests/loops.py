"""The event loop of the tests of the packages whose service runs on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import uvloop


def on_uvloop(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """pytest-asyncio's ``pytest_asyncio_loop_factories`` for the receiver's and the
    projector's tests: both services run on uvloop (``wcs_audit.cli``), so their tests do
    too. The conftests of ``tests/ingest`` and ``tests/projections`` bind it under the hook's
    name; the other tests keep asyncio's loop (the simulator runs on it)."""
    return {"uvloop": uvloop.new_event_loop}
