"""Running the app under uvicorn: in the foreground with graceful SIGTERM (the CLI), or in a
background thread (tests, benchmarks, notebooks).

SIGTERM (and Ctrl+C): uvicorn closes the listening socket, lets in-flight requests finish (up
to `serve.shutdown_timeout_seconds`), then runs the app's shutdown (batcher, backend, audit log).
uvicorn re-raises the signal once it is done; `serve_forever` catches that, so a graceful stop
ends with exit code 0.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from clinical_rlhf.errors import ClinicalRLHFError

logger = logging.getLogger("clinical_rlhf.serve")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: a free one), with one clear error when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio disables Nagle's algorithm only on sockets that say so,
    # and with Nagle on, a keep-alive response waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ClinicalRLHFError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port "
                                f"or stop what uses it") from None
    sock.listen(2048)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn_server(app: FastAPI, shutdown_timeout: float) -> uvicorn.Server:
    config = uvicorn.Config(app, lifespan="on", access_log=False, log_config=None, server_header=False,
                            timeout_graceful_shutdown=max(1, round(shutdown_timeout)))
    server = uvicorn.Server(config)
    state = getattr(app.state, "serving", None)
    if state is not None:
        state.on_fatal = lambda: setattr(server, "should_exit", True)
    return server


def _raise_startup_error(app: FastAPI) -> None:
    error = getattr(getattr(app.state, "serving", None), "error", None)
    if error is None:
        return
    if isinstance(error, ClinicalRLHFError):
        raise error
    raise ClinicalRLHFError(f"the server could not start: {type(error).__name__}: {error}") from None


def serve_forever(app: FastAPI, host: str, port: int, shutdown_timeout: float) -> None:
    """Serve until SIGTERM or Ctrl+C, then shut down gracefully; raise the startup error, if any."""
    sock = bind(host, port)
    server = _uvicorn_server(app, shutdown_timeout)
    logger.info("listening on %s/v1 (model loading; GET /ready answers 200 when it is loaded)", url_of(sock))
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, _frame: caught.append(number))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])  # installs its own handlers, restores ours, re-raises into them
    except SystemExit:
        pass  # uvicorn exits when the app's startup fails; the reason is raised below
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    _raise_startup_error(app)
    if not server.started:
        raise ClinicalRLHFError("the server stopped while starting; the log above says why")
    if caught:
        logger.info("stopped by signal %d after finishing in-flight requests", caught[0])


@dataclass(frozen=True)
class RunningServer:
    url: str
    """Root URL, e.g. `http://127.0.0.1:41234`; the API is under `url + "/v1"`."""
    server: uvicorn.Server
    app: FastAPI


@contextlib.contextmanager
def running_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, shutdown_timeout: float = 10.0,
                   start_timeout: float = 30.0) -> Iterator[RunningServer]:
    """Serve `app` from a background thread for the duration of the block (graceful stop at exit).
    Returns once the socket accepts connections; the model may still be loading (poll /ready)."""
    sock = bind(host, port)
    server = _uvicorn_server(app, shutdown_timeout)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        if not server.started:
            server.should_exit = True
            thread.join(timeout=shutdown_timeout)
            _raise_startup_error(app)
            raise ClinicalRLHFError(f"the server did not start within {start_timeout:g} s")
        yield RunningServer(url_of(sock), server, app)
    finally:
        server.should_exit = True
        thread.join(timeout=shutdown_timeout + 5)
        sock.close()
