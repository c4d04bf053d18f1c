"""Run the app under uvicorn: one process, or `workers` processes sharing the port (each loads
every model and batches its own clients' requests)."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from ..runtime import require
from .models import ServeOptions, load_models

Log = Callable[[str], None]
ENVIRONMENT = "RNNKIT_SERVE"  # how `workers` > 1 hands the runs and options to each process


def require_serve() -> None:
    require("fastapi", "serve", "rnnkit serve")
    require("uvicorn", "serve", "rnnkit serve")


def build_app(runs: list[str], options: ServeOptions, device: str, engine: str | None, log: Log) -> Any:
    from .app import create_app

    return create_app(load_models(runs, device, engine), options, log)


def app_from_environment() -> Any:
    """The app factory each of several worker processes calls (uvicorn imports it by name)."""
    from ..runtime import stderr_logger

    settings = json.loads(os.environ[ENVIRONMENT])
    options = ServeOptions(**settings["options"])
    return build_app(settings["runs"], options, settings["device"], settings["engine"], stderr_logger(False))


def banner(options: ServeOptions, names: list[str]) -> list[str]:
    url = f"http://{'127.0.0.1' if options.host in ('0.0.0.0', '::') else options.host}:{options.port}/"
    lines = [f"serving {', '.join(names)} on http://{options.host}:{options.port}/ (open {url} in a browser)"]
    if options.public:
        lines.append(
            f"warning: --host {options.host} makes this server reachable from other machines, and it has no "
            "authentication: anyone who can reach the port can use the models"
        )
    else:
        lines.append("bound to this machine only (--host 0.0.0.0 to let other machines in)")
    lines.append("Ctrl-C stops it (streams in progress are ended cleanly)")
    return lines


def run_server(runs: list[str], options: ServeOptions, device: str, engine: str | None, log: Log) -> None:
    """Load the runs, say where the server is, and serve until SIGINT/SIGTERM."""
    require_serve()
    import uvicorn

    common: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        "access_log": False,  # RequestLog writes one line per request, with the stream's duration
        "log_level": "warning",
        "timeout_graceful_shutdown": 10,
    }
    if options.workers == 1:
        app = build_app(runs, options, device, engine, log)  # loads (and checks) every run first
        for line in banner(options, list(app.state.rnnkit.models)):
            log(line)
        _server_class()(uvicorn.Config(app, **common)).run()
        return
    names = list(load_models(runs, device, engine))  # every run checked before the processes start
    os.environ[ENVIRONMENT] = json.dumps({"runs": runs, "options": asdict(options), "device": device, "engine": engine})
    for line in banner(options, names):
        log(line)
    log(f"{options.workers} worker processes, each with its own copy of the models")
    uvicorn.run("rnnkit.serve.server:app_from_environment", factory=True, workers=options.workers, **common)


def _server_class() -> Any:
    """uvicorn's Server, except that a signal that stopped it is not raised again afterwards.

    uvicorn re-raises SIGINT/SIGTERM once it has shut down, so that the process dies "of" the
    signal: SIGTERM then ends the process with status -15 (143 in a shell) and SIGINT with a
    KeyboardInterrupt, although every stream was ended and every response sent. A server stopped
    on purpose has done its job: `rnnkit serve` exits 0."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():  # signals belong to it
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server
