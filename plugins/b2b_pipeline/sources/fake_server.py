"""What the local fakes of the API services share: a threaded HTTP server on 127.0.0.1 (a free
port), started and stopped with them, usable as a context manager."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LocalServer:
    """The lifecycle of a fake: `serve(handler, name)` from its `start()`, then `stop()`."""

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def serve(self, handler: type[BaseHTTPRequestHandler], name: str) -> Self:
        """Serve `handler` on 127.0.0.1 at a free port, on a daemon thread named `name`."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)
        self._thread.start()
        return self

    def serve_methods(self, name: str, methods: tuple[str, ...] = ("GET", "POST")) -> Self:
        """`serve` a quiet HTTP/1.1 handler whose `do_<METHOD>` for each of `methods` calls the fake's
        `_handle(handler, method)`."""
        fake = self

        def dispatch(method: str) -> Any:
            def do(handler: BaseHTTPRequestHandler) -> None:
                fake._handle(handler, method)  # type: ignore[attr-defined]

            return do

        def quiet(handler: BaseHTTPRequestHandler, format: str, *args: Any) -> None:
            pass

        attributes: dict[str, Any] = {"protocol_version": "HTTP/1.1", "log_message": quiet}
        attributes |= {f"do_{method}": dispatch(method) for method in methods}
        return self.serve(type("Handler", (BaseHTTPRequestHandler,), attributes), name)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
