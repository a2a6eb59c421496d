"""#11: admins sign in by POSTing their token for a server-side session (hashed, expiring, revocable, an
HttpOnly SameSite=Strict cookie, Secure behind HTTPS); every answer carries the security headers; and
/speedtest/ keeps within limits a public collector can live with."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time

import pytest
import requests
import sqlalchemy as sa

from xaprobe.collector.admins import SESSION_IDLE, SESSION_MAX
from xaprobe.collector.devices import hash_token
from xaprobe.collector.schema import admin_sessions
from xaprobe.months import utc_now

HEADERS = {"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                      "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
           "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


def sign_in(collector, token, **headers):
    return requests.post(collector.base + "/login", data={"token": token, "next": "/commune/18673"},
                         allow_redirects=False, timeout=10, headers=headers)


def test_a_token_in_the_url_signs_no_one_in(collector):
    answer = requests.get(f"{collector.base}/login?token={collector.admin_token}&next=/", allow_redirects=False,
                          timeout=10)
    assert answer.status_code == 200 and "set-cookie" not in answer.headers and 'name="token"' in answer.text


def test_sign_in_makes_a_hashed_session_in_an_httponly_strict_cookie(collector):
    assert sign_in(collector, "xap_wrong").status_code == 401
    answer = sign_in(collector, collector.admin_token)
    assert answer.status_code == 303 and answer.headers["location"] == "/commune/18673"
    cookie = answer.headers["set-cookie"]
    session = answer.cookies["xaprobe_session"]
    assert collector.admin_token not in cookie and len(session) >= 40
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/" in cookie and "Secure" not in cookie
    assert f"Max-Age={int(SESSION_MAX.total_seconds())}" in cookie
    with collector.store.engine.connect() as conn:
        assert conn.execute(sa.select(admin_sessions.c.id_hash)).scalars().all() == [hash_token(session)]
    page = requests.get(collector.base + "/commune/18673", cookies={"xaprobe_session": session}, timeout=10)
    assert page.status_code == 200 and "Xã Cẩm Xuyên" in page.text and 'action="/logout"' in page.text
    assert requests.get(collector.base + "/", cookies={"xaprobe_session": collector.admin_token}, timeout=10,
                        allow_redirects=False).status_code == 303  # the token itself is no session
    assert sign_in(collector, collector.admin_token, **{"X-Forwarded-Proto": "https"}).headers["set-cookie"] \
        .count("Secure") == 1  # a proxy uvicorn trusts (loopback) says the browser came over HTTPS
    redirect = requests.post(
        collector.base + "/login", data={"token": collector.admin_token, "next": "//evil.example/"},
        allow_redirects=False, timeout=10)
    assert redirect.headers["location"] == "/"


def test_logout_ends_the_session(collector):
    session = sign_in(collector, collector.admin_token).cookies["xaprobe_session"]
    jar = {"xaprobe_session": session}
    out = requests.post(collector.base + "/logout", cookies=jar, allow_redirects=False, timeout=10)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert 'xaprobe_session=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    assert requests.get(collector.base + "/api/v1/fleet", cookies=jar, timeout=10).status_code == 401


def test_sessions_end_when_idle_or_old(collector):
    admins = collector.store.admins
    start = utc_now()
    idle = admins.open_session(collector.admin_token, start)
    assert admins.session_admin(idle, start + SESSION_IDLE - dt.timedelta(minutes=1)) == "tests"
    assert admins.session_admin(idle, start + 2 * SESSION_IDLE) is None
    busy = admins.open_session(collector.admin_token, start)
    when = start
    while when < start + SESSION_MAX - dt.timedelta(hours=11):
        when += dt.timedelta(hours=11)
        assert admins.session_admin(busy, when) == "tests"  # each use restarts the idle clock...
    assert admins.session_admin(busy, start + SESSION_MAX + dt.timedelta(minutes=1)) is None  # ...not the last


def test_admin_list_and_revoke_end_sessions_and_token(collector):
    db = collector.store.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "xaprobe.collector", "--db", db, "admin", *args],
                              capture_output=True, text=True, timeout=60)

    session = sign_in(collector, collector.admin_token).cookies["xaprobe_session"]
    listed = cli("list")
    assert listed.returncode == 0 and "tests" in listed.stdout and "1 session(s) open" in listed.stdout
    revoked = cli("revoke", "tests")
    assert revoked.returncode == 0 and "1 dashboard session(s) ended" in revoked.stdout
    assert requests.get(collector.base + "/", cookies={"xaprobe_session": session}, allow_redirects=False,
                        timeout=10).status_code == 303
    assert requests.get(collector.base + "/api/v1/fleet", timeout=10,
                        headers={"Authorization": f"Bearer {collector.admin_token}"}).status_code == 401
    assert sign_in(collector, collector.admin_token).status_code == 401
    again = cli("revoke", "tests")
    assert again.returncode == 1 and again.stderr.strip() == \
        "xaprobe-collector: error: no active admin named 'tests' (see `xaprobe-collector admin list`)"


@pytest.mark.parametrize("method, path", [
    ("GET", "/"), ("GET", "/login"), ("GET", "/commune/18673"), ("GET", "/api/v1/report"), ("GET", "/healthz"),
    ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/static/xaprobe.css"), ("GET", "/nowhere"),
    ("POST", "/api/v1/measurements"), ("POST", "/login"), ("GET", "/speedtest/getIP"), ("GET", "/export/raw.csv"),
])
def test_every_answer_carries_the_security_headers(sqlite_collector, method, path):
    answer = requests.request(method, sqlite_collector.base + path, allow_redirects=False, timeout=10)
    assert {k: answer.headers.get(k) for k in HEADERS} == HEADERS


@pytest.fixture
def limited(tmp_path):
    from xaprobe.collector.app import create_app
    from xaprobe.collector.db import open_engine
    from xaprobe.collector.server import serve_in_thread
    from xaprobe.collector.settings import CollectorSettings
    from xaprobe.collector.speedtest_app import SpeedtestLimits
    from xaprobe.collector.store import CollectorStore

    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = CollectorStore(open_engine(url))
    limits = SpeedtestLimits(max_chunks=3, max_upload_mib=2, tests_per_client=2)
    with serve_in_thread(create_app(store, CollectorSettings(db_url=url, speedtest=limits))) as base:
        yield base + "/speedtest/"
    store.engine.dispose()


def test_speedtest_downloads_are_capped(limited):
    answer = requests.get(limited + "garbage.php?ckSize=100000", timeout=30)
    assert answer.status_code == 200 and len(answer.content) == 3 << 20
    huge = requests.get(limited + "garbage?ckSize=" + "9" * 5000, timeout=30)  # read as PHP reads it: clamped
    assert huge.status_code == 200 and len(huge.content) == 3 << 20
    assert requests.get(limited + "random" + "9" * 5000 + "x1.jpg", timeout=30).status_code == 404


def test_speedtest_uploads_stop_at_the_limit(limited):
    sent = 0

    def body():
        nonlocal sent
        for _ in range(64):  # 64 MiB offered
            sent += 1 << 20
            yield b"\0" * (1 << 20)

    try:
        answer = requests.post(limited + "empty.php", data=body(), timeout=30)
        assert answer.status_code == 413 and "over 2 MiB" in answer.text
    except requests.ConnectionError:
        pass  # the server answered and closed while the client was still sending: reading stopped too
    assert sent < 32 << 20
    assert requests.post(limited + "upload.php", data=b"\0" * (1 << 20), timeout=30).text == f"size={1 << 20}"


def test_speedtest_tests_at_once_per_client_are_limited(limited):
    held = []
    try:
        for _ in range(2):  # two uploads in progress, their bodies not finished
            s = socket.create_connection(("127.0.0.1", int(limited.split(":")[2].split("/")[0])), timeout=10)
            s.sendall(b"POST /speedtest/empty HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"\0" * 10)
            held.append(s)
        for _ in range(50):  # once the server has both in hand, a third is refused
            third = requests.get(limited + "getIP", timeout=10)
            if third.status_code == 429:
                break
            time.sleep(0.1)
        assert third.status_code == 429 and "more than 2 speed tests at once" in third.text
    finally:
        for s in held:
            s.close()
    for _ in range(50):  # the server sees the hang-ups and frees the slots
        if requests.get(limited + "getIP", timeout=10).status_code == 200:
            break
    else:
        raise AssertionError("slots were not freed after the clients hung up")
