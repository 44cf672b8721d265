"""PNG plots of the real-process scenario kinds (overhead, quality)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def process_plots(docs: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
    """Plots of the real-process kinds (overhead, quality)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    for name, doc in docs.items():
        if doc["kind"] not in ("overhead", "quality"):
            continue
        res = doc["result"]
        if doc["kind"] == "overhead":
            rate_levels = [lv for lv in res["levels"] if lv["kind"] == "rate"]
            if rate_levels:
                fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
                strategies = list(rate_levels[0]["runs"])
                for ci, st in enumerate(strategies):
                    color = f"C{ci}"
                    xs = [lv["params"]["rate"] for lv in rate_levels if st in lv["runs"]]
                    for q, ls in (("p50", "-"), ("p99", "--")):
                        ys = [lv["runs"][st]["latency_s"][q] * 1000 for lv in rate_levels if st in lv["runs"]]
                        axes[0].plot(xs, ys, ls, color=color, marker="o", label=f"{st} {q}")
                    d = [lv["runs"][st].get("decision_latency_s") for lv in rate_levels if st in lv["runs"]]
                    if any(d):
                        for q, ls in (("p50", "-"), ("p99", "--")):
                            axes[1].plot(xs, [x[q] * 1000 if x and x[q] is not None else None for x in d], ls, color=color,
                                         marker="o", label=f"{st} decision {q}")
                axes[0].set(xlabel="offered load (req/s)", ylabel="end-to-end latency (ms)", yscale="log",
                            title="Latency vs request rate (zero-work backends)")
                axes[0].legend(fontsize=8)
                axes[1].axhline(1.0, color="grey", lw=0.8, ls=":")
                axes[1].axhline(5.0, color="grey", lw=0.8, ls=":")
                axes[1].set(xlabel="offered load (req/s)", ylabel="picker decision latency (ms)",
                            title="Picker decision latency (own histogram)")
                axes[1].legend(fontsize=8)
                labels, vals = [], []
                for lv in res["levels"]:
                    if lv["kind"] != "rate":
                        for st, r in lv["runs"].items():
                            labels.append(f"{lv['level']}\n{st}")
                            vals.append(r["throughput_rps"])
                axes[2].barh(labels, vals, color=["#4c72b0" if "picker" not in lb else "#dd8452" for lb in labels])
                axes[2].set(xlabel="throughput (req/s)", title="Closed-loop throughput")
                axes[2].tick_params(axis="y", labelsize=7)
                fig.tight_layout()
                p = out_dir / f"{name}.png"
                fig.savefig(p, dpi=110)
                plt.close(fig)
                written.append(p)
            continue
        runs = res["runs"]
        if not runs:
            continue
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
        for st, r in runs.items():
            xs = r.get("ttft_samples_s") or []
            if xs:
                n = len(xs)
                axes[0].step(xs, [(i + 1) / n for i in range(n)], where="post", label=st)
        axes[0].axvline(doc.get("slo_ttft_s", 2.0), color="grey", ls=":", lw=1)
        axes[0].set(xscale="log", xlabel="TTFT (s, real-time-equivalent)", ylabel="fraction of requests",
                    title=f"{name}: TTFT CDF")
        axes[0].legend(fontsize=7)
        names = list(runs)
        import numpy as np

        x = np.arange(len(names))
        for i, q in enumerate(("p50", "p90", "p99")):
            axes[1].bar(x + (i - 1) * 0.27, [runs[n]["ttft_s"][q] or 0 for n in names], 0.27, label=q)
        axes[1].set_xticks(x, names, rotation=30, ha="right", fontsize=7)
        axes[1].set(yscale="log", ylabel="TTFT (s)", title="TTFT percentiles per strategy")
        axes[1].legend(fontsize=8)
        axes[2].bar(x, [runs[n]["output_tokens_per_s"] for n in names], color="#55a868")
        axes[2].set_xticks(x, names, rotation=30, ha="right", fontsize=7)
        axes[2].set(ylabel="output tokens / simulated s", title="Throughput")
        fig.tight_layout()
        p = out_dir / f"{name}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    return written
