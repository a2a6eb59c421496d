"""The engine registry: one line per engine; each module exposes `run(request, settings, server)`."""

from __future__ import annotations

import importlib

from xaprobe.agent.config import AgentConfig
from xaprobe.agent.engines.base import RunRequest
from xaprobe.wire import Measurement

# name -> (module, the AgentConfig attribute holding its settings)
REGISTRY = {
    "http": ("xaprobe.agent.engines.http", "http"),
    "speedtest": ("xaprobe.agent.engines.speedtest", "speedtest"),
}


def run_engine(name: str, request: RunRequest, config: AgentConfig, server: str | None = None) -> Measurement:
    """Run the named engine once with its settings from config; failures come back as Measurements."""
    module_name, settings_attr = REGISTRY[name]
    module = importlib.import_module(module_name)
    return module.run(request, getattr(config, settings_attr), server)
