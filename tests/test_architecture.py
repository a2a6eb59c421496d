"""The seams between the rooms: no import circles, the probe never imports the collector, the uploader
never imports the agent, and every program's user-facing failures have one root."""

from __future__ import annotations

import ast
import contextlib
import socket
import subprocess
import sys

import pytest
from conftest import REPO, SOURCES


def module_files() -> dict[str, object]:
    out = {}
    for folder, package in SOURCES.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            name = ".".join((package, *parts[:-1]) if parts[-1] == "__init__" else (package, *parts))
            out[name] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the xaprobe modules it imports anywhere in its text (function-level imports included)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xaprobe"):
                for a in node.names:  # `from xaprobe.agent import context` names a module
                    edges.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module)
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_import_graph_is_read_from_the_code():
    graph = import_graph()
    assert "xaprobe.agent.store" in graph["xaprobe.agent.daemon"]
    assert "xaprobe.agent.context" in graph["xaprobe.agent.status"]  # `from xaprobe.agent import context`
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_there_are_no_import_circles():
    assert cycles(import_graph()) == []


def test_layers_hold():
    graph = import_graph()
    for name, edges in graph.items():
        if name.startswith(("xaprobe.agent", "xaprobe.uploader")):
            assert not any(e.startswith("xaprobe.collector") for e in edges), name
        if name.startswith("xaprobe.uploader"):
            assert not any(e.startswith("xaprobe.agent") for e in edges), name
        if name.startswith("xaprobe.collector"):
            assert not any(e.startswith(("xaprobe.agent", "xaprobe.uploader")) for e in edges), name
    core = [n for n in graph if not n.startswith(("xaprobe.agent", "xaprobe.uploader", "xaprobe.collector"))]
    for name in core:  # the shared package depends on neither side (the demo composes both on purpose)
        if name != "xaprobe.demo":
            assert not any(e.startswith(("xaprobe.agent", "xaprobe.collector", "xaprobe.uploader"))
                           for e in graph[name]), name


def test_only_the_probe_store_touches_sqlite():
    for name, path in module_files().items():
        if name.startswith(("xaprobe.agent", "xaprobe.uploader")) and name != "xaprobe.agent.store":
            text = path.read_text()
            assert "sqlite" not in text.replace("sqlite_collector", ""), name


def test_probe_state_keys_live_in_the_store_only():
    for name, path in module_files().items():
        if name != "xaprobe.agent.store":
            text = path.read_text()
            assert '"state.' not in text and "slot_end." not in text and "get_state(" not in text, name


@pytest.mark.parametrize("missing, says", [
    ("requests", "comes with xaprobe itself"),
    ("sqlalchemy", "pip install 'xaprobe[collector]'"),
])
def test_a_missing_dependency_is_named_with_what_provides_it(tmp_path, missing, says):
    # a stand-in module that fails to import exactly as an absent distribution does
    (tmp_path / f"{missing}.py").write_text(f"raise ModuleNotFoundError('No module named {missing}', "
                                            f"name={missing!r})\n")
    if missing == "requests":  # the probe's upload needs requests
        (tmp_path / "agent.toml").write_text('device_id = "p"\ntoken = "t"\ncollector_url = "http://127.0.0.1:9/"\n'
                                             'store = "probe.db"\n')
        command = ["xaprobe.agent", "--config", str(tmp_path / "agent.toml"), "upload"]
    else:  # the collector's report needs its database layer
        command = ["xaprobe.collector", "--db", f"sqlite:///{tmp_path / 'c.db'}", "report"]
    done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "XAPROBE_LANG": "en"})
    assert done.returncode == 1, done.stderr
    assert f"the Python module '{missing}' is missing; " in done.stderr and says in done.stderr
    assert "Traceback" not in done.stderr


def test_a_programming_import_error_is_not_dressed_up_as_a_missing_extra():
    from xaprobe.commands import missing_module_message

    assert missing_module_message(ModuleNotFoundError("No module named 'xaprobe.nope'", name="xaprobe.nope")) is None
    message = missing_module_message(ModuleNotFoundError("x", name="sqlalchemy.dialects"))
    assert message and "'sqlalchemy'" in message


@pytest.mark.parametrize("host", ["www.speedtest.net", b"www.speedtest.net", "collector.example.vn"])
def test_no_test_can_look_up_a_name_on_the_network(host, no_name_lookups):
    with pytest.raises(socket.gaierror, match="is blocked"):
        socket.getaddrinfo(host, 80)
    assert no_name_lookups.blocked  # the test would fail at its end, the error swallowed or not
    no_name_lookups.blocked.clear()
    assert socket.getaddrinfo("localhost", 80) and socket.getaddrinfo("127.0.0.1", 80)


def test_a_test_server_stops_even_when_a_connection_vanished_before_it_was_taken():
    # what serve_forever does when select() called the listening socket ready for a connection gone before
    # accept() took it: with no connection waiting, the test servers' accept gives up (tests/testserver.py); a
    # plain ThreadingHTTPServer's blocks, and its shutdown() never returns (the CI hang)
    import http.server
    import threading

    from testserver import Server

    for cls, returns in ((Server, True), (http.server.ThreadingHTTPServer, False)):
        server = cls(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
        taken = threading.Thread(target=server._handle_request_noblock, daemon=True)
        taken.start()
        taken.join(timeout=3)
        assert taken.is_alive() is not returns, cls
        with contextlib.suppress(OSError):
            server.socket.shutdown(socket.SHUT_RDWR)  # ends a blocked accept() with an error
        server.server_close()
        taken.join(timeout=3)
        assert not taken.is_alive()
