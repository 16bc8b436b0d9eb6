#!/usr/bin/env python3
"""Turns scripts/bench.sh's raw results (one JSON object a line) into the tables it prints, with
ratios against a direct call in the same run, and a machine-readable summary. A measure repeated
over several rounds is reported as the median of each of its figures ("rounds" says how many).
The p99 a path adds is taken in each round against that round's direct call (the paths of a round
run one after another, so they share the machine's state of the moment), then the median of the
rounds, with their range: on a shared machine, how far one round is from the next.
Usage: bench_report.py RESULTS.jsonl SUMMARY.json"""
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]


def oha(r):
    s, p = r["oha"]["summary"], r["oha"]["latencyPercentiles"]
    ms = lambda v: v * 1000 if v is not None else float("nan")
    return {
        "p50_ms": ms(p["p50"]),
        "p99_ms": ms(p["p99"]),
        "req_s": s["requestsPerSec"],
        "ok_pct": s["successRate"] * 100,
    }


def median(runs):
    """Each figure's median over the rounds, and how many rounds there were."""
    out = {k: statistics.median(r[k] for r in runs) for k in runs[0] if isinstance(runs[0][k], (int, float))}
    out["rounds"] = len(runs)
    return out


summary = {"setup": {}, "json": {}, "stream": {}, "stream_reused": {}, "held_streams": {}, "cache": {}, "store": {}}
for r in rows:
    k = r["kind"]
    if k == "setup":
        summary["setup"] = {"workers": r["workers"], "cores": r["cores"], "body_bytes": r.get("body_bytes")}
    elif k == "json":
        summary["json"].setdefault(r["load"], {}).setdefault(r["path"], []).append(oha(r))
    elif k == "stream":
        summary["stream"].setdefault(r["path"], []).append(oha(r))
    elif k == "stream_reused":
        summary["stream_reused"].setdefault(r["path"], []).append(r["probe"])
    elif k == "held_streams":
        summary["held_streams"] = {
            **oha(r),
            "peak_rss_mib": r["peak_rss_kib"] / 1024,
            "rss_before_mib": r.get("rss_before_kib", 0) / 1024,
            "cpu_pct_of_a_core": r["cpu_ticks"] / r["seconds"],
        }
    elif k == "cache":
        summary["cache"][r["path"]] = oha(r)
    elif k == "store":
        summary["store"] = r["bench"]

added = {}
for load, paths in summary["json"].items():
    direct = paths.get("direct", [])
    for name, runs in paths.items():
        if name != "direct" and len(runs) == len(direct):
            each = [x["p99_ms"] - d["p99_ms"] for x, d in zip(runs, direct)]
            added.setdefault(load, {})[name] = {
                "median": statistics.median(each), "min": min(each), "max": max(each), "rounds": each}
    for name, runs in paths.items():
        paths[name] = median(runs)
summary["added_p99_ms"] = added
for kind in ("stream", "stream_reused"):
    for name, runs in summary[kind].items():
        summary[kind][name] = median(runs)

rounds = max((x["rounds"] for paths in summary["json"].values() for x in paths.values()), default=1)
if rounds > 1:
    print(f"(each figure: the median of {rounds} rounds)\n")
if summary["setup"]:
    size = summary["setup"].get("body_bytes")
    print(f"llmgw workers = nginx worker_processes = {summary['setup']['workers']}, on {summary['setup']['cores']} cores"
          + (f"; requests of {size:,} bytes" if size else "") + "\n")
print(f"{'load':<10} {'path':<7} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>9} {'ok %':>7}  vs direct")
for load, paths in summary["json"].items():
    d = paths["direct"]
    for name in ("direct", "nginx", "llmgw"):
        if name not in paths:
            continue
        x = paths[name]
        a = added.get(load, {}).get(name)
        spread = f" (rounds {a['min']:+.3f} to {a['max']:+.3f})" if a and len(a["rounds"]) > 1 else ""
        vs = "" if name == "direct" else (
            f"p99 {a['median'] if a else x['p99_ms'] - d['p99_ms']:+.3f} ms{spread}, "
            f"throughput {100 * x['req_s'] / d['req_s']:.0f}%")
        print(f"{load:<10} {name:<7} {x['p50_ms']:9.3f} {x['p99_ms']:9.3f} {x['req_s']:9.0f} {x['ok_pct']:7.2f}  {vs}")
print()
print(f"{'streams':<22} {'p50 ms':>9} {'p99 ms':>9} {'streams/s':>10}  vs direct")
d = summary["stream"].get("direct")
for name, x in summary["stream"].items():
    vs = "" if name == "direct" else f"{100 * x['req_s'] / d['req_s']:.0f}% of direct"
    print(f"{name + ', 64 conns':<22} {x['p50_ms']:9.3f} {x['p99_ms']:9.3f} {x['req_s']:10.0f}  {vs}")
print()
print(f"{'one reused connection':<22} {'ttfb p50':>9} {'end p50':>9} {'end p99':>9}  vs direct (p50)")
d = summary["stream_reused"].get("direct")
for name, x in summary["stream_reused"].items():
    vs = "" if name == "direct" else (
        f"ttfb +{x['ttfb_p50_ms'] - d['ttfb_p50_ms']:.3f} ms, end +{x['total_p50_ms'] - d['total_p50_ms']:.3f} ms")
    print(f"{name:<22} {x['ttfb_p50_ms']:9.3f} {x['total_p50_ms']:9.3f} {x['total_p99_ms']:9.3f}  {vs}")
h = summary["held_streams"]
if h:
    print()
    print(f"1000 streams held open through llmgw: {h['req_s']:.0f} streams/s, {h['ok_pct']:.2f}% ok, "
          f"peak RSS {h['peak_rss_mib']:.0f} MiB ({h['rss_before_mib']:.0f} MiB before them), "
          f"{h['cpu_pct_of_a_core']:.0f}% of a core")
c = summary["cache"]
if c:
    print()
    print(f"cache hit p50 {c['llmgw']['p50_ms']:.3f} ms vs provider {c['direct']['p50_ms']:.3f} ms: "
          f"{c['direct']['p50_ms'] / c['llmgw']['p50_ms']:.0f}x faster")
st = summary["store"]
if st:
    print()
    print(f"store: {st['records']:,} history records written at {st['records_per_s']:,.0f} records/s "
          f"({st['dropped']} dropped), {st['mib_per_million']:.0f} MiB a million on disk; startup to the "
          f"first served request {st['startup_empty_ms']:.0f} ms with an empty store, "
          f"{st['startup_full_ms']:.0f} ms with them ({st['startup_after_kill_ms']:.0f} ms after a kill)")


def goals():
    """The performance goals (README, Performance), each with its value in this run, its limit and
    whether it was met, for the measures the run has (one without nginx still checks the rest)."""
    out = []

    def check(what, value, limit, met):
        out.append({"goal": what, "value": round(value, 3), "limit": limit, "met": bool(met)})

    for load, limit in (("1000", 0.3), ("5000", 1.0)):
        a = added.get(load, {}).get("llmgw")
        if a:
            check(f"p99 added at {load} req/s, ms", a["median"], limit, a["median"] <= limit)
    j = summary["json"].get("max", {})
    if "llmgw" in j and "direct" in j:
        share = 100 * j["llmgw"]["req_s"] / j["direct"]["req_s"]
        check("max throughput, % of direct", share, 40, share >= 40)
    s = summary["stream"]
    if "llmgw" in s and "direct" in s:
        share = 100 * s["llmgw"]["req_s"] / s["direct"]["req_s"]
        check("streams/s, % of direct", share, 40, share >= 40)
    r = summary["stream_reused"]
    if "llmgw" in r and "direct" in r:
        for key, what in (("ttfb_p50_ms", "first byte"), ("total_p50_ms", "end")):
            extra = r["llmgw"][key] - r["direct"][key]
            check(f"stream on a reused connection, {what} p50 added, ms", extra, 0.3, extra <= 0.3)
    if h:
        check("1000 held streams, peak RSS MiB (and all answered)", h["peak_rss_mib"], 100,
              h["peak_rss_mib"] <= 100 and h["ok_pct"] == 100)
    if st:
        check("history, MiB a million records", st["mib_per_million"], 100, st["mib_per_million"] <= 100)
        check("history writer, records/s (none dropped)", st["records_per_s"], 200_000,
              st["records_per_s"] >= 200_000 and st["dropped"] == 0)
        check("startup, empty store, ms", st["startup_empty_ms"], 100, st["startup_empty_ms"] <= 100)
        if st["records"] >= 1_000_000:
            check("startup, a million records, ms", st["startup_full_ms"], 500, st["startup_full_ms"] <= 500)
    return out


summary["goals"] = goals()
if summary["goals"]:
    met = sum(g["met"] for g in summary["goals"])
    size = summary["setup"].get("body_bytes") or 0
    # The goals were set for one-word requests; a conversation in each request is judged by them too.
    note = f" (set for one-word requests; these carried {size:,} bytes)" if size > 1024 else ""
    print(f"\ngoals met: {met} of {len(summary['goals'])}{note}")
    num = lambda v: f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.3f}".rstrip("0").rstrip(".")
    for g in summary["goals"]:
        print(f"  {'met ' if g['met'] else 'MISS'}  {g['goal']}: {num(g['value'])} (goal {num(g['limit'])})")
json.dump(summary, open(sys.argv[2], "w"), indent=2)
print(f"\nsummary: {sys.argv[2]}")
