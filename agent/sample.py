"""The commented sample agent.toml, written from the config dataclasses and the engine registry alone.

Every value is its field's default unless EXAMPLES gives one (a made-up probe in Cẩm Xuyên, Hà Tĩnh);
config/agent.toml is this module's output, and a test keeps the two the same.
"""

from __future__ import annotations

from xaprobe.agent.config import AgentConfig, LinkConfig, PlannerConfig, QuietCheckConfig, UploadConfig
from xaprobe.agent.engines import engine_module, engine_names, settings_class
from xaprobe.tomlschema import comment, declared, sample_lines, toml_value

HEADER = """\
# xaprobe probe configuration (agent.toml), written by `xaprobe config sample`.
# Check it with:  xaprobe config check /etc/xaprobe/agent.toml
# `xaprobe-collector device add --write-config` writes a ready one for each enrolled probe.
"""

COLLECTOR = "https://xaprobe.hatinh.example.vn/"
EXAMPLES = {
    "": {"device_id": "ht-cam-xuyen-01", "collector_url": COLLECTOR},
    "engines.http": {"server": COLLECTOR + "speedtest/"},
}
EXAMPLE_LINKS = (
    {"name": "viettel", "interface": "wwan0", "operator": "Viettel", "access": "cellular", "budget_mb": 6000.0},
    {"name": "vnpt", "interface": "wwan1", "operator": "VNPT", "access": "cellular", "budget_mb": 6000.0},
)


def _custom(name: str, line: str) -> list[str]:
    """A key read by config.py's own functions: its help, then the line given."""
    return comment(declared(AgentConfig, name).metadata["help"]) + [line]


def _top_level() -> list[str]:
    target = declared(LinkConfig, "target")
    return [
        *sample_lines(AgentConfig, EXAMPLES[""]),
        *_custom("token", 'token_credential = "token"'),
        *_custom("commune_code", 'commune_code = "18673"  # Xã Cẩm Xuyên, Hà Tĩnh'),
        *comment(f"{target.metadata['help']} A [[links]] table may set its own target."),
        f"target = {toml_value(target.default)}",
        *_custom("store", '# store = "/var/lib/xaprobe/probe.db"'),
    ]


def _section(header: str, cls: type, intro: str = "") -> list[str]:
    return ["", *comment(intro), f"[{header}]", *sample_lines(cls, EXAMPLES.get(header))]


def _links() -> list[str]:
    lines = ["", *comment(declared(AgentConfig, "links").metadata["help"])]
    for i, example in enumerate(EXAMPLE_LINKS):
        # the first link shows every key with its help, the others only their example's keys; a link's
        # target stays commented out because it defaults to the top-level one
        only = None if i == 0 else frozenset(example)
        lines += ["", "[[links]]", *sample_lines(LinkConfig, example, frozenset({"target"}), help=i == 0, only=only)]
    return lines


def sample_config() -> str:
    """The sample agent.toml: every key with its help as a comment; `xaprobe config check` accepts it."""
    lines = [HEADER, *_top_level()]
    for name in engine_names():
        doc = (engine_module(name).__doc__ or "").strip().split("\n\n")[0]
        lines += _section(f"engines.{name}", settings_class(name), " ".join(doc.split()))
    lines += _section("upload", UploadConfig) + _section("planner", PlannerConfig)
    lines += _section("quiet_check", QuietCheckConfig) + _links()
    return "\n".join(lines) + "\n"
