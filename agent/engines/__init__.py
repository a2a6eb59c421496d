"""The engine registry, the only list of engines: one line per engine, name -> module.

Each module exposes `Settings` (a frozen dataclass of its `[engines.<name>]` keys, declared with
xaprobe.tomlschema.setting) and `run(request, settings, server) -> Measurement`. Config parsing, the
`--engine` choices of `xaprobe measure` and the sample agent.toml are all built from this dict.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from xaprobe.agent.engines.base import RunRequest
from xaprobe.wire import Measurement

REGISTRY: dict[str, str] = {
    "http": "xaprobe.agent.engines.http",
    "speedtest": "xaprobe.agent.engines.speedtest",
}


def engine_names() -> tuple[str, ...]:
    """Every registered engine's name, in registry order."""
    return tuple(REGISTRY)


def engine_module(name: str) -> ModuleType:
    # engine modules are cheap to import (heavy libraries load inside run()), so parsing a config may
    # import every one of them to learn its settings
    return importlib.import_module(REGISTRY[name])


def settings_class(name: str) -> type[Any]:
    """The named engine's Settings dataclass."""
    return engine_module(name).Settings


def run_engine(name: str, request: RunRequest, settings: Any, server: str | None = None) -> Measurement:
    """Run the named engine once with its settings; failures come back as Measurements."""
    return engine_module(name).run(request, settings, server)
