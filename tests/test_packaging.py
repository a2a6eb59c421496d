"""The probe installs with exactly the four packages it uses; the collector's come with an extra."""

from __future__ import annotations

import configparser
import re

from conftest import REPO


def requirements(text: str) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0].lower()
            for line in text.strip().splitlines() if line.strip() and not line.strip().startswith("#")}


def test_probe_dependencies_are_exactly_the_four():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert requirements(cfg["options"]["install_requires"]) == {"speedtest-cli", "requests", "schedule", "sqlite-utils"}
    collector = requirements(cfg["options.extras_require"]["collector"])
    assert {"fastapi", "uvicorn", "sqlalchemy", "psycopg", "jinja2", "vietnam-provinces"} <= collector
    assert cfg["options"]["python_requires"] == ">=3.11"
    scripts = cfg["options.entry_points"]["console_scripts"]
    assert "xaprobe = xaprobe.agent.cli:main" in scripts and "xaprobe-collector = xaprobe.collector.cli:main" in scripts


def test_the_probe_never_imports_the_collector():
    for path in list((REPO / "agent").rglob("*.py")) + list((REPO / "uploader").rglob("*.py")):
        text = path.read_text()
        assert "xaprobe.collector" not in text and "sqlalchemy" not in text and "fastapi" not in text, path
