"""Markdown and plot for the scale scenario (results/scale.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v * 1000:.3f}"


def scale_markdown(doc: dict[str, Any]) -> str:
    res = doc["result"]
    tgt = res["target"]
    out = ["## Cost at scale (in process)", "", doc.get("description", ""), "",
           "Decision = `Director.route` per request; CPU = the thread's CPU clock (what the decision costs), wall = "
           "perf_counter (adds any time the process was descheduled: the machine's load, column `load`).", "",
           "| endpoints | prompt | decision CPU p50 / p99 ms | decision wall p50 / p99 ms | CPU ms per decision (mean) | load |",
           "|---|---|---|---|---|---|"]
    met = None
    for r in res["rows"]:
        out.append(f"| {r['endpoints']} | {r['prompt']} ({r['prompt_bytes'] // 1000 or r['prompt_bytes']}"
                   f"{' KB' if r['prompt_bytes'] >= 1000 else ' B'}) | {_ms(r['cpu_s']['p50'])} / {_ms(r['cpu_s']['p99'])} "
                   f"| {_ms(r['wall_s']['p50'])} / {_ms(r['wall_s']['p99'])} | {r['cpu_s_per_decision'] * 1000:.3f} "
                   f"| {r['loadavg_1m']:.1f} |")
        if r["endpoints"] == tgt["endpoints"] and r["prompt"] == tgt["prompt"]:
            met = r
    if met:
        out += ["", f"Target p99 ≤ {tgt['p99_s'] * 1000:g} ms at {tgt['endpoints']} endpoints, small prompts: decision CPU p99 "
                    f"{_ms(met['cpu_s']['p99'])} ms ({'met' if met['cpu_s']['p99'] <= tgt['p99_s'] else 'not met'}), wall p99 "
                    f"{_ms(met['wall_s']['p99'])} ms ({'met' if met['wall_s']['p99'] <= tgt['p99_s'] else 'not met'} on this "
                    f"machine at load {met['loadavg_1m']:.1f})."]
    out += ["", "Scrape: CPU to parse one endpoint's `/metrics` page (HTTP not included; see the overhead scenario for "
                "the real process at 100 endpoints), and what a 50 ms interval costs per endpoint:", "",
            "| page | bytes | parse CPU µs | cores per endpoint @50 ms | 1,024 endpoints |", "|---|---|---|---|---|"]
    for name, s in res["scrape"].items():
        out.append(f"| {name} | {s['page_bytes']:,} | {s['parse_cpu_s'] * 1e6:.0f} | {s['cores_per_endpoint_at_50ms']:.4f} "
                   f"| {s['cores_per_endpoint_at_50ms'] * 1024:.1f} cores |")
    out += ["", "![cost vs endpoints](scale.png)"]
    return "\n".join(out)


def scale_plot(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = doc["result"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2))
    kinds = list(dict.fromkeys(r["prompt"] for r in res["rows"]))
    for k, kind in enumerate(kinds):
        rows = [r for r in res["rows"] if r["prompt"] == kind]
        xs = [r["endpoints"] for r in rows]
        a.plot(xs, [r["cpu_s"]["p50"] * 1000 for r in rows], "-o", color=f"C{k}", label=f"{kind} CPU p50")
        a.plot(xs, [r["cpu_s"]["p99"] * 1000 for r in rows], "--o", color=f"C{k}", label=f"{kind} CPU p99")
    a.axhline(res["target"]["p99_s"] * 1000, color="grey", ls=":", lw=1)
    a.set(xscale="log", yscale="log", xlabel="endpoints", ylabel="decision CPU (ms)", title="Decision cost vs endpoints")
    a.set_xticks(sorted({r["endpoints"] for r in res["rows"]}), [str(x) for x in sorted({r["endpoints"] for r in res["rows"]})])
    a.legend(fontsize=7)
    ns = [16, 64, 256, 1024]
    for k, (name, s) in enumerate(res["scrape"].items()):
        b.plot(ns, [s["cores_per_endpoint_at_50ms"] * n for n in ns], "-o", color=f"C{k}", label=name)
    b.set(xscale="log", yscale="log", xlabel="endpoints", ylabel="cores", title="Parsing /metrics every 50 ms")
    b.set_xticks(ns, [str(n) for n in ns])
    b.legend(fontsize=7)
    fig.tight_layout()
    p = out_dir / "scale.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return [p]


def _cost_cell(v: float | None) -> str:
    if v is None:
        return "–"
    return "no goodput" if v == float("inf") else f"{v:.2f}"


def weight_search_markdown(doc: dict[str, Any]) -> str:
    from .search import rank

    res = dict(doc["result"])
    cells = res["training_cells"]
    # re-ranked from the stored per-cell numbers, so the rule in search.py is the one shown
    ranked = rank({n: c["cells"] for n, c in res["candidates"].items()}, res["baseline"])
    res["candidates"] = {n: {**c, **ranked["candidates"][n]} for n, c in res["candidates"].items()}
    res["ranking"], res["winner"] = ranked["ranking"], ranked["ranking"][0]
    out = ["## Weight search (training set only)", "", doc.get("description", ""), "",
           f"{len(res['candidates'])} candidates × {len(cells)} training cells × {res['seeds']} seeds; objective = geometric "
           f"mean over cells of (TTFT p90 / {res['baseline']}) × ({res['baseline']} goodput / goodput), lower is better. "
           "Per-cell columns: that cost.", "",
           "| rank | candidate | objective | " + " | ".join(cells) + " |", "|---" * (3 + len(cells)) + "|"]
    for i, name in enumerate(res["ranking"]):
        c = res["candidates"][name]
        obj = "–" if c["objective"] is None else f"{c['objective']:.3f}"
        out.append(f"| {i + 1} | {'**' + name + '**' if i == 0 else name} | {obj} | "
                   + " | ".join(_cost_cell(c["cost"][cell]) for cell in cells) + " |")
    out += ["", f"Winner on the training set: **{res['winner']}**."]
    return "\n".join(out)


def crosscheck_markdown(doc: dict[str, Any]) -> str:
    res = doc["result"]
    tol = res["tolerance"]
    med = res["median_abs_difference"]
    out = ["## Virtual time vs real sockets (cross-check)", "", doc.get("description", ""), "",
           f"Real: {res['real_repeats']} runs per scenario (real-time-equivalent TTFT, mean of the runs; spread = "
           f"(max − min) / mean of the real runs). Virtual: the same request plan, {res['virtual_seeds']} seeds (mean [95% CI]).",
           "", "| scenario | strategy | TTFT p50 real / virtual s | Δ p50 | real spread p50 | TTFT p90 real / virtual s "
               "| Δ p90 | real spread p90 |", "|---|---|---|---|---|---|---|---|"]

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v * 100:+.1f}%"

    def s(v: float | None) -> str:
        return "–" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")

    for name, sc in res["scenarios"].items():
        for st, c in sc["strategies"].items():
            out.append(f"| {name} | {st} | {s(c['p50']['real']['mean'])} / {s(c['p50']['virtual']['mean'])} "
                       f"| {pct(c['p50']['relative_difference'])} | {pct(c['p50']['real_spread'])} "
                       f"| {s(c['p90']['real']['mean'])} / {s(c['p90']['virtual']['mean'])} "
                       f"| {pct(c['p90']['relative_difference'])} | {pct(c['p90']['real_spread'])} |")
    out += ["", f"**Tolerance (largest |Δ| over the table): TTFT p50 {pct(tol['p50'])}, TTFT p90 {pct(tol['p90'])}**; "
                f"median |Δ|: p50 {pct(med['p50'])}, p90 {pct(med['p90'])}."]
    for k, why in res.get("failed", {}).items():
        out.append(f"- **{k}: FAILED**: {why}")
    from .report import quality_markdown

    for name, sc in res["scenarios"].items():
        run = sc.get("real_run")
        if run and run.get("result", {}).get("runs") is not None:
            out += ["", f"#### Real-socket run: {name} (the last of the {res['real_repeats']})", ""]
            out.append(quality_markdown({"scenario": name, "description": run["description"],
                                         "time_scale": sc["time_scale"], "result": run["result"]}).split("\n", 3)[-1])
    return "\n".join(out)
