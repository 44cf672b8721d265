"""Closed-loop load from `wrk` (C, one thread) when it is installed.

The asyncio client costs about as much CPU per request as the picker does; on a 2-core machine
that caps what a saturation run can show. wrk drives the same closed loop for a fraction of the
CPU, so the gateway rather than the client is what saturates. It reports percentiles, not
samples: 50/75/90/99 from `--latency`.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass
class WrkRun:
    requests: int
    errors: int
    seconds: float
    percentiles_s: dict[str, float]  # "p50", "p75", "p90", "p99"


def available() -> bool:
    return shutil.which("wrk") is not None


def _seconds(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse(output: str) -> WrkRun:
    pcts = {f"p{m.group(1)}": _seconds(m.group(2))
            for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)$", output, re.M)}
    done = re.search(r"^\s+(\d+) requests in ([\d.]+\w+),", output, re.M)
    if not done or len(pcts) != 4:
        raise ValueError(f"unexpected wrk output:\n{output}")
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return WrkRun(int(done.group(1)), errors, _seconds(done.group(2)), pcts)


def _lua(body: bytes) -> str:
    quoted = body.decode().replace("\\", "\\\\").replace('"', '\\"')
    return ('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.body = "{quoted}"\n')


async def closed_loop(url: str, body: bytes, connections: int, duration_s: float) -> WrkRun:
    with tempfile.TemporaryDirectory() as d:
        script = Path(d) / "post.lua"
        script.write_text(_lua(body))
        proc = await asyncio.create_subprocess_exec(
            "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--latency", "-s", str(script), url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), duration_s + 30)
    return parse(out.decode(errors="replace"))
