"""The picker's own metrics in Prometheus text format, served on the metrics port (/metrics).

Hand-rolled (no client library in the image): a few counters, one latency histogram, and
gauges computed at scrape time from the datastore.
"""

from __future__ import annotations

import asyncio
import bisect
from typing import Callable, NamedTuple

from .datastore import Metrics

# Fine below 1 ms: the decision budget is p50 <= 1 ms, p99 <= 5 ms.
DECISION_BUCKETS = (0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075, 0.001, 0.0015, 0.002,
                    0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, v)] += 1
        self.sum += v
        self.count += 1

    def render(self, name: str, out: list[str], labels: str = "") -> None:
        """`labels`: extra label pairs for every series, e.g. 'priority="0",' (trailing comma)."""
        cum = 0
        for b, c in zip(self.buckets, self.counts):
            cum += c
            out.append(f'{name}_bucket{{{labels}le="{b}"}} {cum}')
        out.append(f'{name}_bucket{{{labels}le="+Inf"}} {self.count}')
        tail = f"{{{labels.rstrip(',')}}}" if labels else ""
        out.append(f"{name}_sum{tail} {self.sum}")
        out.append(f"{name}_count{tail} {self.count}")


# Flow control: waits from milliseconds (a gap in the queues) to minutes (a pool scaling up).
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
COLD_START_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus-style quantile from cumulative (upper bound, count) pairs, linear within a bucket."""
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            span = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / span if span else 0.0)
        prev_le, prev_count = le, count
    return prev_le


def parse_histogram(text: str, name: str) -> list[tuple[float, float]]:
    """Cumulative buckets of `name` from exposition text (for benchmarks and tests)."""
    out = []
    prefix = name + '_bucket{le="'
    for line in text.splitlines():
        if line.startswith(prefix):
            le = line[len(prefix) : line.index('"', len(prefix))]
            out.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return out


class EndpointView(NamedTuple):
    """What the picker last scraped from one endpoint, and the saturation it derives from it."""
    endpoint: str
    metrics: Metrics
    saturation: float


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class SelfMetrics:
    def __init__(self) -> None:
        self.decision_seconds = Histogram(DECISION_BUCKETS)
        self.decisions: dict[tuple[str, str], int] = {}  # (endpoint, reason) -> count
        self.rejections: dict[tuple[int, str], int] = {}  # (status, reason) -> count
        self.scrape_errors: dict[str, int] = {}
        # Set by main: () -> list of (endpoint, age seconds or None, ready bool)
        self.endpoint_state: Callable[[], list[tuple[str, float | None]]] = lambda: []
        self.pool_saturation: Callable[[], float] = lambda: 0.0
        self.endpoint_views: Callable[[], list[EndpointView]] = lambda: []
        self.inflight: Callable[[], list[tuple[str, int]]] = lambda: []
        # () -> (streams, messages in, messages out) of the ext_proc servicer
        self.ext_proc_counts: Callable[[], tuple[int, int, int]] = lambda: (0, 0, 0)
        # () -> whether this replica holds the pool's Lease (always true without leader election)
        self.leader: Callable[[], bool] = lambda: True
        # Flow control (flow_control.py): () -> {priority: (requests, bytes)} held now; None = off.
        self.flow_depth: Callable[[], dict[int, tuple[int, int]]] | None = None
        self.flow_waits: dict[tuple[int, str], Histogram] = {}  # (priority, outcome) -> wait seconds
        self.flow_enqueues: dict[int, int] = {}
        self.cold_starts = Histogram(COLD_START_BUCKETS)

    def flow_enqueued(self, priority: int) -> None:
        self.flow_enqueues[priority] = self.flow_enqueues.get(priority, 0) + 1

    def flow_left(self, priority: int, outcome: str, waited_s: float) -> None:
        """A request left the queue: dispatched, expired, cancelled (client gone) or rejected."""
        h = self.flow_waits.get((priority, outcome))
        if h is None:
            h = self.flow_waits[(priority, outcome)] = Histogram(WAIT_BUCKETS)
        h.observe(waited_s)

    def flow_cold_start(self, seconds: float) -> None:
        """The pool had no endpoint while requests waited, and now dispatches again after this long."""
        self.cold_starts.observe(seconds)

    def decided(self, endpoint: str, reason: str, seconds: float) -> None:
        self.decision_seconds.observe(seconds)
        k = (endpoint, reason)
        self.decisions[k] = self.decisions.get(k, 0) + 1

    def rejected(self, status: int, reason: str) -> None:
        k = (status, reason)
        self.rejections[k] = self.rejections.get(k, 0) + 1

    def scrape_failed(self, endpoint: str) -> None:
        self.scrape_errors[endpoint] = self.scrape_errors.get(endpoint, 0) + 1

    def render(self) -> str:
        out: list[str] = []
        out.append("# HELP picker_decision_duration_seconds Time from full request body to routing decision.")
        out.append("# TYPE picker_decision_duration_seconds histogram")
        self.decision_seconds.render("picker_decision_duration_seconds", out)
        out.append("# HELP picker_decisions_total Routing decisions by primary endpoint and reason.")
        out.append("# TYPE picker_decisions_total counter")
        for (ep, reason), n in sorted(self.decisions.items()):
            out.append(f'picker_decisions_total{{endpoint="{_esc(ep)}",reason="{_esc(reason)}"}} {n}')
        out.append("# HELP picker_rejected_requests_total Requests answered by the picker itself (shed, rate limited, errors).")
        out.append("# TYPE picker_rejected_requests_total counter")
        for (status, reason), n in sorted(self.rejections.items()):
            out.append(f'picker_rejected_requests_total{{code="{status}",reason="{_esc(reason)}"}} {n}')
        shed = sum(n for (s, r), n in self.rejections.items() if r == "rejected-saturated")
        limited = sum(n for (s, r), n in self.rejections.items() if r == "rate-limited")
        out.append("# TYPE picker_shed_requests_total counter")
        out.append(f"picker_shed_requests_total {shed}")
        out.append("# TYPE picker_rate_limited_requests_total counter")
        out.append(f"picker_rate_limited_requests_total {limited}")
        out.append("# HELP picker_scrape_errors_total Failed metrics scrapes per endpoint.")
        out.append("# TYPE picker_scrape_errors_total counter")
        for ep, n in sorted(self.scrape_errors.items()):
            out.append(f'picker_scrape_errors_total{{endpoint="{_esc(ep)}"}} {n}')
        state = self.endpoint_state()
        out.append("# HELP picker_metrics_age_seconds Age of the last successful scrape per endpoint (-1 = never).")
        out.append("# TYPE picker_metrics_age_seconds gauge")
        for ep, age in state:
            out.append(f'picker_metrics_age_seconds{{endpoint="{_esc(ep)}"}} {-1 if age is None else round(age, 4)}')
        out.append("# HELP picker_ready_endpoints Endpoints currently eligible for scheduling.")
        out.append("# TYPE picker_ready_endpoints gauge")
        out.append(f"picker_ready_endpoints {len(state)}")
        out.append("# HELP picker_inflight_requests Requests this picker routed that have not finished, per endpoint.")
        out.append("# TYPE picker_inflight_requests gauge")
        for ep, n in self.inflight():
            out.append(f'picker_inflight_requests{{endpoint="{_esc(ep)}"}} {n}')
        streams, m_in, m_out = self.ext_proc_counts()
        out.append("# HELP picker_ext_proc_streams_total ext_proc streams (one per HTTP request).")
        out.append("# TYPE picker_ext_proc_streams_total counter")
        out.append(f"picker_ext_proc_streams_total {streams}")
        out.append("# TYPE picker_ext_proc_messages_total counter")
        out.append(f'picker_ext_proc_messages_total{{direction="in"}} {m_in}')
        out.append(f'picker_ext_proc_messages_total{{direction="out"}} {m_out}')
        out.append("# HELP picker_leader 1 on the replica that holds the pool's Lease (and serves), 0 on a standby.")
        out.append("# TYPE picker_leader gauge")
        out.append(f"picker_leader {int(self.leader())}")
        out.append("# TYPE picker_pool_saturation gauge")
        out.append(f"picker_pool_saturation {round(self.pool_saturation(), 4)}")
        self._render_views(out)
        if self.flow_depth is not None:
            self._render_flow(out)
        return "\n".join(out) + "\n"

    def _render_views(self, out: list[str]) -> None:
        """The scheduler's inputs per endpoint as last scraped (the model server's own page may
        have moved on since): what a decision saw, for operators and for tests against real vLLM."""
        views = self.endpoint_views()
        gauges = (("queue_size", "Requests waiting on the endpoint (vllm:num_requests_waiting).", lambda m: m.waiting),
                  ("running_requests", "Requests running on the endpoint (vllm:num_requests_running).", lambda m: m.running),
                  ("kv_cache_usage", "KV cache used, 0-1 (vllm:kv_cache_usage_perc).", lambda m: m.kv_usage),
                  ("max_lora", "LoRA adapter slots (max_lora of vllm:lora_requests_info; 0 = none).", lambda m: m.max_lora))
        for name, help_, value in gauges:
            out.append(f"# HELP picker_endpoint_{name} {help_} As last scraped by the picker.")
            out.append(f"# TYPE picker_endpoint_{name} gauge")
            out.extend(f'picker_endpoint_{name}{{endpoint="{_esc(v.endpoint)}"}} {value(v.metrics)}' for v in views)
        out.append("# HELP picker_endpoint_lora_adapter 1 per adapter the endpoint's last scraped page lists as running "
                   "or waiting (real vLLM lists an adapter with requests in flight as both).")
        out.append("# TYPE picker_endpoint_lora_adapter gauge")
        for v in views:
            for state, names in (("running", v.metrics.active_loras), ("waiting", v.metrics.waiting_loras)):
                out.extend(f'picker_endpoint_lora_adapter{{endpoint="{_esc(v.endpoint)}",adapter="{_esc(a)}",'
                           f'state="{state}"}} 1' for a in sorted(names))
        out.append("# HELP picker_endpoint_saturation The endpoint's share of picker_pool_saturation: "
                   "max(waiting / queue threshold, KV usage / KV threshold), 1 when its metrics are stale, "
                   "in-flight / max concurrency without engine metrics.")
        out.append("# TYPE picker_endpoint_saturation gauge")
        out.extend(f'picker_endpoint_saturation{{endpoint="{_esc(v.endpoint)}"}} {round(v.saturation, 4)}' for v in views)
        out.append("# HELP picker_endpoint_scrapes_total Successful metrics scrapes per endpoint.")
        out.append("# TYPE picker_endpoint_scrapes_total counter")
        out.extend(f'picker_endpoint_scrapes_total{{endpoint="{_esc(v.endpoint)}"}} {v.metrics.scrapes}' for v in views)

    def _render_flow(self, out: list[str]) -> None:
        assert self.flow_depth is not None
        depth = self.flow_depth()
        out.append("# HELP picker_flow_queued_requests Requests held in the flow-control queue (all priorities): "
                   "the demand of a pool with no ready endpoint, which autoscalers wake on.")
        out.append("# TYPE picker_flow_queued_requests gauge")
        out.append(f"picker_flow_queued_requests {sum(n for n, _ in depth.values())}")
        out.append("# HELP picker_flow_queue_size Requests held in the flow-control queue, per priority.")
        out.append("# TYPE picker_flow_queue_size gauge")
        for p, (n, _) in sorted(depth.items()):
            out.append(f'picker_flow_queue_size{{priority="{p}"}} {n}')
        out.append("# TYPE picker_flow_queue_bytes gauge")
        for p, (_, b) in sorted(depth.items()):
            out.append(f'picker_flow_queue_bytes{{priority="{p}"}} {b}')
        out.append("# TYPE picker_flow_enqueued_total counter")
        for p, n in sorted(self.flow_enqueues.items()):
            out.append(f'picker_flow_enqueued_total{{priority="{p}"}} {n}')
        out.append("# HELP picker_flow_queue_wait_seconds Time in the queue, per priority and how the request left it "
                   "(dispatched, expired, cancelled, rejected).")
        out.append("# TYPE picker_flow_queue_wait_seconds histogram")
        for (p, outcome), h in sorted(self.flow_waits.items()):
            h.render("picker_flow_queue_wait_seconds", out, f'priority="{p}",outcome="{outcome}",')
        out.append("# HELP picker_cold_start_seconds From the first request held with no ready endpoint to the "
                   "first dispatch once one is ready (a scale-up from zero as the picker sees it).")
        out.append("# TYPE picker_cold_start_seconds histogram")
        self.cold_starts.render("picker_cold_start_seconds", out)


async def serve_metrics(metrics: SelfMetrics, host: str, port: int) -> asyncio.base_events.Server:
    """Plain asyncio HTTP server: GET /metrics (anything else 404). One request per connection
    read loop with keep-alive, which is all Prometheus needs."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].split()
                path = line[1].split(b"?")[0] if len(line) > 1 else b""
                if path == b"/metrics":
                    body = metrics.render().encode()
                    status, ctype = b"200 OK", b"text/plain; version=0.0.4"
                else:
                    body, status, ctype = b"not found\n", b"404 Not Found", b"text/plain"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype
                             + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)

