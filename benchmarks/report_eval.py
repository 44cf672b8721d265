"""Markdown and plots for the virtual-time evaluation (results/evaluation.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SETS = (("held_out", "Held-out set (never used for tuning)"), ("training", "Training set (the weight search's)"))
DETAIL = (("ttft_p50", "TTFT p50", "s"), ("ttft_p90", "TTFT p90", "s"), ("ttft_p99", "TTFT p99", "s"),
          ("tpot_p90", "TPOT p90", "ms"), ("throughput_tok_s", "out tok/s", "n"), ("goodput_rps", "goodput req/s", "n"),
          ("prefix_hit_rate", "prefix hit", "%"))


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "–"
    if unit == "ms":
        return f"{v * 1000:.1f}"
    if unit == "%":
        return f"{v * 100:.0f}%"
    if unit == "s":
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    return f"{v:.1f}" if abs(v) < 100 else f"{v:.0f}"


def ci(c: dict[str, Any], unit: str) -> str:
    """`mean [lo, hi]` of a mean_ci dict."""
    if c.get("mean") is None:
        return "–"
    if c.get("lo") is None:
        return fmt(c["mean"], unit)
    return f"{fmt(c['mean'], unit)} [{fmt(c['lo'], unit)}, {fmt(c['hi'], unit)}]"


def _verdict_word(v: str) -> str:
    return {"better": "**better**", "worse": "**worse**", "tie": "tie (intervals overlap)"}[v]


def summary_table(res: dict[str, Any], which: str) -> list[str]:
    cand, ref = res["candidate"], res["reference"]
    rows = ["| workload | round robin | least request | " + f"{ref} | **{cand}** | oracle | verdict (TTFT p90) | "
            f"goodput {ref} → {cand} | verdict (goodput) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, cell in res["cells"].items():
        if cell["set"] != which:
            continue
        st = cell["strategies"]

        def p90(s: str) -> str:
            return ci(st[s]["ttft_p90"], "s") if s in st else "–"
        rows.append(f"| {name} | {p90('round-robin')} | {p90('least-request')} | {p90(ref)} | **{p90(cand)}** | "
                    f"{p90('oracle')} | {_verdict_word(cell['verdict']['ttft_p90'])} | "
                    f"{ci(st[ref]['goodput_rps'], 'n')} → {ci(st[cand]['goodput_rps'], 'n')} | "
                    f"{_verdict_word(cell['verdict']['goodput_rps'])} |")
    return rows


def cell_markdown(name: str, cell: dict[str, Any], res: dict[str, Any]) -> list[str]:
    w = cell["workload"]
    out = [f"#### {name} ({cell['family']}, {cell['set'].replace('_', '-')})", "",
           f"{cell['description']}. {w['rate']:g} req/s for {w['duration_s']:g} s (first {w['warmup_s']:g} s not "
           f"measured), {cell['cluster']['replicas']} replicas, max_num_seqs {cell['cluster']['max_num_seqs']}; "
           f"SLO TTFT ≤ {cell['slo']['ttft_s']:g} s and TPOT ≤ {cell['slo']['tpot_s'] * 1000:g} ms. "
           f"Mean [95% CI] over {res['seeds']} seeds.", "",
           "| strategy | " + " | ".join(label for _, label, _ in DETAIL) + " | shed |",
           "|---" * (len(DETAIL) + 2) + "|"]
    for s, agg in cell["strategies"].items():
        bold = "**" if s == res["candidate"] else ""
        out.append(f"| {bold}{s}{bold} | " + " | ".join(ci(agg[m], u) for m, _, u in DETAIL)
                   + f" | {ci(agg['shed_rate'], '%')} |")
    by = {s: a.get("by_objective") for s, a in cell["strategies"].items() if a.get("by_objective")}
    if by:
        out += ["", "Per objective (TTFT p90 s / goodput req/s / shed):", "",
                "| strategy | " + " | ".join(next(iter(by.values()))) + " |", "|---" * (1 + len(next(iter(by.values())))) + "|"]
        for s, objs in by.items():
            out.append(f"| {s} | " + " | ".join(f"{ci(o['ttft_p90'], 's')} / {ci(o['goodput_rps'], 'n')} / "
                                                f"{ci(o['shed_rate'], '%')}" for o in objs.values()) + " |")
    d = cell["paired_candidate_minus_reference"]
    out += ["", f"Paired per seed, {res['candidate']} − {res['reference']}: TTFT p90 {ci(d['ttft_p90'], 's')} s, "
                f"TTFT p99 {ci(d['ttft_p99'], 's')} s, goodput {ci(d['goodput_rps'], 'n')} req/s.", ""]
    return out


def _worse(a: dict[str, Any], b: dict[str, Any], metric: str) -> bool:
    """`a` is worse than `b` on `metric` and their 95% intervals do not overlap."""
    from .evaluation import LOWER_IS_BETTER
    from .stats import intervals_separate

    if not intervals_separate(a, b):
        return False
    return (a["mean"] > b["mean"]) if metric in LOWER_IS_BETTER else (a["mean"] < b["mean"])


def _ci3(c: dict[str, Any], metric: str) -> str:
    """`mean [lo, hi]` to 3 significant digits (TPOT in ms), so close intervals stay distinguishable."""
    k = 1000 if metric.startswith("tpot") else 1
    return f"{c['mean'] * k:.3g} [{c['lo'] * k:.3g}, {c['hi'] * k:.3g}]"


def behind(res: dict[str, Any], which: str = "held_out") -> list[str]:
    """Every cell of a set where the candidate is behind: worse than the reference, the oracle or a
    baseline on any verdict metric with non-overlapping intervals, or not beating the reference on
    TTFT p90 or goodput (the intervals overlap)."""
    from .evaluation import VERDICT_METRICS

    names = {"ttft_p50": "TTFT p50", "ttft_p90": "TTFT p90", "ttft_p99": "TTFT p99", "tpot_p90": "TPOT p90",
             "goodput_rps": "goodput"}
    cand, ref = res["candidate"], res["reference"]
    out = []
    for name, cell in res["cells"].items():
        if cell["set"] != which:
            continue
        st, items = cell["strategies"], []
        for other in (ref, "oracle", "round-robin", "least-request"):
            if other not in st:
                continue
            worse = [f"{names[m]} {_ci3(st[cand][m], m)} vs {_ci3(st[other][m], m)}"
                     for m in VERDICT_METRICS if _worse(st[cand][m], st[other][m], m)]
            if worse:
                items.append(f"worse than {other}: " + "; ".join(worse))
        ties = [names[m] for m in ("ttft_p90", "goodput_rps") if cell["verdict"][m] == "tie"]
        if ties:
            items.append(f"does not beat {ref} on {' or '.join(ties)} (intervals overlap)")
        if items:
            out.append(f"{name}: " + ". ".join(i[0].upper() + i[1:] for i in items) + ".")
    return out


def _interval(res: dict[str, Any]) -> str:
    iv = res["scrape"].get("interval_ms")
    return f"{iv:g} ms" if iv else "picker's own scrape.interval_ms"


def evaluation_markdown(doc: dict[str, Any]) -> str:
    from .evaluation import VERDICT_METRICS

    res = doc["result"]
    out = [f"## Scheduling quality, virtual time ({res['seeds']} seeds per cell)", "",
           doc.get("description", ""), "",
           f"Scrape every {_interval(res)} with {res['scrape']['latency_ms']:g} ms latency; "
           f"candidate **{res['candidate']}** vs reference **{res['reference']}**: "
           "*better/worse* only when the 95% intervals do not overlap. "
           f"{len(res['cells'])} cells × {len(res['strategies'])} strategies × {res['seeds']} seeds in "
           f"{res['wall_s'] / 60:.1f} min on {res['jobs']} process(es); load average at the end "
           f"{', '.join(f'{x:.1f}' for x in res['loadavg'])}.", ""]
    for which, title in SETS:
        if not any(c["set"] == which for c in res["cells"].values()):
            continue
        out += [f"### {title}: TTFT p90 (s) and goodput, mean [95% CI]", ""] + summary_table(res, which) + [""]
        out += [f"![TTFT CDFs, {which}](evaluation-{which}.png)", ""]
    out += [f"### Where {res['candidate']} is behind", "",
            f"Per cell: metrics (of {', '.join(VERDICT_METRICS)}) where it is worse than another strategy with "
            f"non-overlapping 95% intervals (mean [CI], TPOT in ms), and where it does not beat {res['reference']} "
            "on TTFT p90 or goodput.", ""]
    for which, title in SETS:
        lag = behind(res, which)
        if any(c["set"] == which for c in res["cells"].values()):
            out += [f"**{title}**", ""] + ([f"- {x}" for x in lag] if lag else ["- nowhere."]) + [""]
    for which, _ in SETS:
        for name, cell in res["cells"].items():
            if cell["set"] == which:
                out += cell_markdown(name, cell, res)
    return "\n".join(out)


def evaluation_plots(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = doc["result"]
    written = []
    for which, title in SETS:
        cells = [(n, c) for n, c in res["cells"].items() if c["set"] == which]
        if not cells:
            continue
        cols = 3
        rows = (len(cells) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
        for ax, (name, cell) in zip(axes.flat, cells):
            for k, (s, agg) in enumerate(cell["strategies"].items()):
                pts = [p for p in agg["ttft_cdf"] if p["mean"] is not None]
                if not pts:
                    continue
                qs = [p["q"] / 100 for p in pts]
                ax.plot([p["mean"] for p in pts], qs, color=f"C{k}", label=s, lw=2 if s == res["candidate"] else 1.2)
                if all(p["lo"] is not None for p in pts):
                    ax.fill_betweenx(qs, [max(p["lo"], 1e-4) for p in pts], [p["hi"] for p in pts], color=f"C{k}", alpha=0.18)
            ax.axvline(cell["slo"]["ttft_s"], color="grey", ls=":", lw=1)
            ax.set(xscale="log", title=name, xlabel="TTFT (simulated s)", ylabel="fraction of requests")
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(cells):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7, loc="lower right")
        fig.suptitle(f"{title}: TTFT CDF, mean over {res['seeds']} seeds with 95% intervals (shaded)", fontsize=11)
        fig.tight_layout()
        p = out_dir / f"evaluation-{which}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    return written
