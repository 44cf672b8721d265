"""`python -m igw.local.forward LISTEN TARGET -- CMD...`: run CMD and expose it on a pod address.

For model servers that cannot bind a given address (llm-d-inference-sim listens on every address
of one --port): CMD listens on TARGET (127.0.0.1:<free port>) and this process forwards TCP from
LISTEN (the pod's 127.0.1.x:<targetPort>). It lives and dies with CMD; SIGTERM is passed on.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def _serve(listen: str, target: str, child: subprocess.Popen) -> int:
    lhost, _, lport = listen.rpartition(":")
    thost, _, tport = target.rpartition(":")

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(thost, int(tport))
        except OSError:
            cw.close()
            return
        await asyncio.gather(_pipe(cr, uw), _pipe(ur, cw))

    server = await asyncio.start_server(handle, lhost, int(lport), reuse_address=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, child.terminate)
    async with server:
        while child.poll() is None:
            await asyncio.sleep(0.1)
    return child.returncode or 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[2] != "--":
        print("usage: python -m igw.local.forward LISTEN TARGET -- CMD...", file=sys.stderr)
        return 2
    listen, target, cmd = args[0], args[1], args[3:]
    child = subprocess.Popen(cmd)
    try:
        return asyncio.run(_serve(listen, target, child))
    finally:
        if child.poll() is None:
            child.kill()


if __name__ == "__main__":
    sys.exit(main())
