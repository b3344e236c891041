"""Drive Debian's headless Chromium over the Chrome DevTools Protocol (a websocket), for browser tests.

No Playwright or Selenium: Chromium is started with `--remote-debugging-port=0`, its port read from
`DevToolsActivePort` in the fresh profile folder, and one page target is driven with plain CDP
commands (`Page.navigate`, `Runtime.evaluate`, `Page.captureScreenshot`...). Console errors,
uncaught exceptions, browser log errors and every network request are recorded from the events.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_ENV = "B2B_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
# as this machine's notes say: headless, as root, no network chatter
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--mute-audio",
)


def chromium_binary() -> str | None:
    """The Chromium to use (`B2B_CHROMIUM`, else /usr/bin/chromium), or None when there is none."""
    candidate = os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
    path = shutil.which(candidate) if not os.path.isabs(candidate) else candidate
    return path if path and os.access(path, os.X_OK) else None


class CDPError(RuntimeError):
    pass


@dataclass
class PageProblems:
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return self.console_errors + self.exceptions + self.log_errors


class HeadlessChromium:
    """`with HeadlessChromium(tmp) as browser: browser.open(url) ...`: one page in a fresh profile."""

    def __init__(self, workdir: Path, binary: str | None = None, width: int = 1280, height: int = 1000):
        self.binary = binary or chromium_binary()
        if self.binary is None:
            raise FileNotFoundError("no Chromium: install Debian's chromium or set B2B_CHROMIUM")
        self.workdir = Path(workdir)
        self.width, self.height = width, height
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws: Any = None
        self.session: str | None = None
        self.problems = PageProblems()
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self._stack = contextlib.ExitStack()

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> HeadlessChromium:
        from websockets.sync.client import connect

        profile = self.workdir / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "chromium.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                self.binary,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while True:
            if port_file.exists():
                lines = port_file.read_text().split("\n")
                if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].strip():
                    break
            if self.proc.poll() is not None:
                raise CDPError(f"Chromium exited with {self.proc.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise CDPError(f"Chromium did not open its DevTools port; see {self.log_path}")
            time.sleep(0.1)
        url = f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
        self.ws = self._stack.enter_context(connect(url, max_size=None, open_timeout=30))
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=True)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.ws is not None:
                with contextlib.suppress(Exception):
                    self.send("Browser.close", timeout=10)
                self._stack.close()
        finally:
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()  # our own child, by its handle
                    self.proc.wait(timeout=10)
            self._log.close()

    # ---------------------------------------------------------------- protocol

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: bool = False, timeout: float = 30
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            data = self._recv(deadline, method)
            if data.get("id") == message["id"]:
                if "error" in data:
                    raise CDPError(f"{method}: {data['error']}")
                return data.get("result", {})
            self._event(data)

    def _recv(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CDPError(f"timed out waiting for {waiting_for}")
        try:
            return json.loads(self.ws.recv(timeout=remaining))
        except TimeoutError as exc:
            raise CDPError(f"timed out waiting for {waiting_for}") from exc

    def _event(self, data: dict[str, Any]) -> None:
        if "method" not in data:
            return
        self._events.append(data)
        method, params = data["method"], data.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.problems.console_errors.append(text)
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.problems.exceptions.append(str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.problems.log_errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")
        elif method == "Network.requestWillBeSent":
            self.problems.requests.append(params.get("request", {}).get("url", ""))

    def wait_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        for i, data in enumerate(self._events):
            if data.get("method") == method:
                return self._events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            data = self._recv(deadline, method)
            if data.get("method") == method:
                self._event(data)
                self._events.remove(data)
                return data
            self._event(data)

    # ---------------------------------------------------------------- page

    def open(self, url: str, timeout: float = 60) -> None:
        """Navigate and wait for the load event."""
        result = self.send("Page.navigate", {"url": url}, session=True)
        if result.get("errorText"):
            raise CDPError(f"cannot open {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired", timeout=timeout)

    def evaluate(self, expression: str) -> Any:
        """A JavaScript expression's value (JSON-able), awaiting a promise."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=True,
        )
        if "exceptionDetails" in result:
            raise CDPError(f"evaluation failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """A PNG of the page (the whole page when `full_page`)."""
        height = self.height
        if full_page:
            height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
            self.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session=True,
            )
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": full_page}, True, 60)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
