"""Embedding helpers: run one or many replicas in an event loop or a thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Iterable

from .config import SimConfig
from .replica import Replica


def _configs(configs) -> list[SimConfig]:
    if configs is None:
        return [SimConfig()]
    if isinstance(configs, SimConfig):
        return [configs]
    return list(configs)


async def start(configs: SimConfig | Iterable[SimConfig] | None = None) -> list[Replica]:
    """Start replicas on the running loop and return them (call ``await r.stop()``)."""
    reps = []
    for c in _configs(configs):
        r = Replica(c)
        await r.start()
        reps.append(r)
    return reps


async def serve(configs: SimConfig | Iterable[SimConfig] | None = None,
                stop_event: asyncio.Event | None = None) -> None:
    """Run replicas until ``stop_event`` is set (forever if None)."""
    reps = await start(configs)
    try:
        if stop_event is None:
            await asyncio.Event().wait()
        else:
            await stop_event.wait()
    finally:
        for r in reps:
            await r.stop()


class SimHandle:
    """Replicas running on an event loop in a background thread."""

    def __init__(self):
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.replicas: list[Replica] = []
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def replica(self) -> Replica:
        return self.replicas[0]

    @property
    def url(self) -> str:
        return self.replicas[0].url

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.replicas]

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the simulator loop and return its result."""
        fut = asyncio.run_coroutine_threadsafe(_call(fn, *args), self.loop)
        return fut.result(10)

    def state(self, i: int = 0) -> dict:
        return self.call(lambda: self.replicas[i].engine.state())

    def stop(self) -> None:
        if self.loop is None:
            return
        if self._stop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(self._stop.set)
        if self.thread is not None:
            self.thread.join(10)
        self.loop = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


async def _call(fn, *args):
    return fn(*args)


def start_in_thread(configs: SimConfig | Iterable[SimConfig] | None = None, **kwargs) -> SimHandle:
    """Start replicas in a daemon thread; returns once they listen.

    ``start_in_thread(SimConfig(...))``, a list of configs, or keyword arguments for
    one ``SimConfig`` (``start_in_thread(port=0, time_scale=0.01)``).  Use port 0 for
    an ephemeral port; ``handle.url`` gives the bound address.
    """
    if configs is None:
        kwargs.setdefault("port", 0)
        configs = SimConfig(**kwargs)
    h = SimHandle()
    ready = threading.Event()

    def run():
        loop = asyncio.new_event_loop()
        h.loop = loop
        asyncio.set_event_loop(loop)

        async def main():
            h._stop = asyncio.Event()
            try:
                h.replicas = await start(configs)
            except BaseException as e:
                h._error = e
                ready.set()
                return
            ready.set()
            await h._stop.wait()
            for r in h.replicas:
                await r.stop()
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    h.thread = threading.Thread(target=run, name="vllm-sim", daemon=True)
    h.thread.start()
    ready.wait(30)
    if h._error is not None:
        raise h._error
    return h
