"""The metrics endpoint's life: the event hook serves ``/metrics`` while the ``metrics`` setting says so.

The hook (``fs_guard.runtime.sofia_events``) calls ``Endpoint.look`` once per slice of its loop
and ``Endpoint.stop`` before it returns, so the endpoint starts and stops with the hook, and a
changed ``metrics`` setting (a hot reload of the file) moves it, or stops it, within a slice.

Nothing here may fail FreeSWITCH's start or the hook: a port in use, an address the host does
not have or a missing prometheus_client is one error line on the console, and the hook goes on
without metrics (trying the same setting again every ``RETRY`` seconds, without more lines).
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from typing import Any, Callable, Optional
from wsgiref.simple_server import WSGIRequestHandler, make_server

from fs_guard.runtime import banlog, host, state
from fs_guard.runtime.config import METRICS_EXTRA, MetricsSettings

#: How often the hook looks at the setting (s); it loops in slices of this order anyway.
LOOK_EVERY = 0.5
#: How long an endpoint that could not start waits before it tries the same setting again (s).
RETRY = 30.0
#: How often the server thread looks for a stop request (s): bounds how long ``stop`` takes.
POLL = 0.1


class _QuietHandler(WSGIRequestHandler):
    """No line on FreeSWITCH's stderr for every scrape."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class Endpoint:
    """One HTTP server on the configured address, or none; ``hook_started`` is the hook's
    ``started_at`` (served as ``fs_guard_event_hook_up``)."""

    def __init__(self, hook_started: Callable[[], Optional[float]]) -> None:
        self._hook_started = hook_started
        self._settings: Optional[MetricsSettings] = None  # what is served, or was tried last
        self._server: Any = None
        self._thread: Optional[threading.Thread] = None
        self._next_look = 0.0
        self._retry_at: Optional[float] = None  # the last start failed: try again then

    @property
    def serving(self) -> Optional[MetricsSettings]:
        return self._settings if self._server is not None else None

    def look(self) -> None:
        """At most once per LOOK_EVERY: follow the configuration's ``metrics`` setting.

        Reads the configuration through ``current()`` (one ``stat``), so the endpoint starts
        when the hook does and follows an edited file even while no call arrives.
        """
        now = time.monotonic()
        if now < self._next_look:
            return
        self._next_look = now + LOOK_EVERY
        wanted = state.CONFIG.current().metrics
        if wanted == self._settings and (self._retry_at is None or now < self._retry_at):
            return
        retrying = wanted == self._settings
        self.stop()
        self._settings = wanted
        if wanted is not None:
            self._start(wanted, quiet=retrying)

    def _start(self, settings: MetricsSettings, quiet: bool) -> None:
        try:
            from fs_guard.runtime import metrics  # imports prometheus_client: only when configured

            self._server = _server(settings, metrics.registry(self._hook_started))
        except ImportError as exc:
            self._failed(settings, f"prometheus_client cannot be imported ({exc}): {METRICS_EXTRA}", quiet)
            return
        except OSError as exc:
            self._failed(settings, f"cannot listen on {settings.listen}: {exc.strerror or exc} (is another program "
                                   "using that port? choose another with fail2ban.metrics.listen)", quiet)
            return
        self._retry_at = None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": POLL},
                                        name="fs-guard metrics", daemon=True)
        self._thread.start()
        host.console("notice", f"fs-guard: metrics endpoint serving {settings.url}")

    def _failed(self, settings: MetricsSettings, why: str, quiet: bool) -> None:
        self._server = None
        self._retry_at = time.monotonic() + RETRY
        if not quiet:
            host.console("err", f"fs-guard: metrics endpoint not started: {banlog.escape(why, limit=1024)}; "
                                f"the hook goes on without it and tries again every {RETRY:g} s")

    def stop(self) -> None:
        """Close the listening socket and end the server thread (within about POLL)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        self._settings = None
        self._retry_at = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(1.0)
        host.console("notice", "fs-guard: metrics endpoint stopped")


def _server(settings: MetricsSettings, registry: Any) -> Any:
    """A threading WSGI server bound to ``settings`` serving the registry (not yet serving)."""
    from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET

        def server_bind(self) -> None:
            """HTTPServer's, without its reverse DNS lookup of the address (a slow resolver would
            hold the hook)."""
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = self.server_address[:2]
            self.setup_environ()

    return make_server(settings.host, settings.port, make_wsgi_app(registry), Server, handler_class=_QuietHandler)
