"""How an HTTP stand-in serves: its ASGI app by uvicorn on a free loopback port, as a task of the
running event loop, so a test talks to it over real HTTP without a thread or a process of its own."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: Ctrl-C stays with pytest (or the demo)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class LoopbackServer:
    """One app served on `host` at a free port (`port` once started), started and stopped by its stand-in."""

    def __init__(self, name: str, host: str = "127.0.0.1") -> None:
        self.name = name  # the task's name, and what start-up errors call the stand-in
        self.host = host
        self.port = 0
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    async def start(self, app: ASGIApp, *, startup_timeout: float = 30.0) -> int:
        """Bind a free port and serve `app` until `stop`; returns the port once uvicorn accepts."""
        if self._task is not None:
            raise RuntimeError(f"the {self.name} is running already")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,  # a long poll still open at stop is cut short
        )
        server = self._server = _QuietServer(config)
        task = self._task = asyncio.create_task(server.serve(sockets=[sock]), name=self.name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + startup_timeout
        while not server.started:
            if task.done():
                self._server = self._task = None
                sock.close()
                await task  # re-raises what stopped uvicorn
                raise RuntimeError(f"the {self.name} stopped during startup")
            if loop.time() > deadline:
                await self.stop()
                raise TimeoutError(f"the {self.name} did not start in time")
            await asyncio.sleep(0.005)
        return self.port

    async def stop(self) -> None:
        """Shut uvicorn down: gracefully within 5 s, then by force."""
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=5)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
