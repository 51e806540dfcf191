#!/usr/bin/env python3
"""Turns a hyperfine --export-json file into a markdown table of medians.

Usage: hf-medians.py RESULT.json
Columns: median, mean ± σ, min, max (seconds or milliseconds, whichever reads
better) and each command's median relative to the fastest median.
"""
import json
import statistics
import sys

results = json.load(open(sys.argv[1]))["results"]
ms = max(r["median"] for r in results) < 1.0
unit, scale = ("ms", 1000.0) if ms else ("s", 1.0)
fastest = min(r["median"] for r in results)
print(f"| Command | Median [{unit}] | Mean ± σ [{unit}] | Min [{unit}] | Max [{unit}] | Relative (medians) |")
print("|:---|---:|---:|---:|---:|---:|")
for r in results:
    sd = statistics.stdev(r["times"]) if len(r["times"]) > 1 else 0.0
    f = (lambda x: f"{x * scale:.1f}") if ms else (lambda x: f"{x * scale:.3f}")
    print(
        f"| `{r['command']}` | {f(r['median'])} | {f(r['mean'])} ± {f(sd)} | {f(r['min'])} | {f(r['max'])} "
        f"| {r['median'] / fastest:.2f} |"
    )
