"""Drive headless Chromium through the DevTools protocol over --remote-debugging-pipe (NUL-separated JSON on
fds 3 and 4), so a test can type into a form, click, read the DOM and the console like a person's browser."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any


def _high(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Chromium:
    """One headless Chromium with its own profile directory; one page."""

    def __init__(self, binary: str, profile: Path, timeout_s: float = 60.0):
        self.profile, self.timeout_s = profile, timeout_s
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()
        # above 10, so that the shell's 3<& and 4>& cannot overwrite one end with the other
        to_child, from_child = (_high(fd) for fd in (to_child, from_child))
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--remote-debugging-pipe", "--window-size=1280,1400", "about:blank"]
        # bash (dash takes one-digit fds only) puts the pipe ends on the fds Chromium reads (3) and writes (4)
        self.proc = subprocess.Popen(["bash", "-c", f'exec "$0" "$@" 3<&{to_child} 4>&{from_child}', binary, *args],
                                     pass_fds=(to_child, from_child), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def _message(self, deadline: float | None = None) -> dict[str, Any]:
        deadline = deadline or time.monotonic() + self.timeout_s
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer")
            ready, _, _ = select.select([self._read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                continue
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise EOFError("Chromium closed its pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._message()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, method: str) -> dict[str, Any]:
        """The next event of this kind (one that came in already is taken first), within the timeout."""
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + self.timeout_s
        while True:
            event = self._message(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)

    def navigate(self, url: str) -> None:
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result["result"].get("value")

    def type_text(self, text: str) -> None:
        """Type into the focused field, as a keyboard would (nothing passes through a URL or a script)."""
        self.call("Input.insertText", session=True, text=text)

    def click_and_wait(self, selector: str) -> None:
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        self.wait_for("Page.loadEventFired")

    def set_viewport(self, width: int, height: int, mobile: bool = False) -> None:
        """Lay the page out at this size, as a phone (mobile: the meta viewport is honoured) or a desktop."""
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=mobile)

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        """A PNG of the viewport, or of the whole page's length when full_page."""
        params: dict[str, Any] = {}
        if full_page:
            size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
            params = {"captureBeyondViewport": True,
                      "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}}
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", session=True, **params)["data"]))

    def console(self) -> list[str]:
        """What the page's console and the browser's security log said (CSP violations land here)."""
        return [e["params"]["entry"]["text"] for e in self.events if e.get("method") == "Log.entryAdded"] + \
            [" ".join(str(a.get("value", "")) for a in e["params"]["args"])
             for e in self.events if e.get("method") == "Runtime.consoleAPICalled"]

    def close(self) -> None:
        if self.proc.returncode is not None:
            return
        try:
            self.call("Browser.close")
        except (EOFError, OSError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=30)  # Chromium writes its History file as it exits
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=30)
            os.close(self._write)
            os.close(self._read)
