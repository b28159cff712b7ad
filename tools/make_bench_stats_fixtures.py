#!/usr/bin/env python3
"""Reference values for src/bench/stats.c, checked by tests/bench/test_stats.c.

Writes tests/fixtures/bench/stats.json (deterministic: fixed seeds):
  percentiles: samples with numpy.percentile (default method "linear") at
               q = 0, 1, 10, 25, 50, 75, 90, 99, 99.9, 100, plus mean and
               std(ddof=1)
  mwu:         sample pairs with scipy.stats.mannwhitneyu(x, y,
               alternative="two-sided", method="auto", use_continuity=True):
               U1 (statistic), p-value, and which method "auto" chose
               (exact when min(n) <= 8 and no ties, else asymptotic)
  changes:     synthetic piecewise-constant series with Gaussian noise and
               known step positions (the first index of each new level)

Usage: python3 tools/make_bench_stats_fixtures.py [OUT]
"""
import json
import sys

import numpy as np
import scipy
from scipy import stats


def percentile_cases(rng):
    cases = []
    for n in (1, 2, 3, 7, 10, 101, 1000):
        x = rng.lognormal(mean=-7.0, sigma=0.3, size=n)
        cases.append(x)
    cases.append(np.array([5.0, 1.0, 3.0, 3.0, 2.0, 9.0, 9.0, 0.5]))
    out = []
    qs = [0, 1, 10, 25, 50, 75, 90, 99, 99.9, 100]
    for x in cases:
        out.append({
            "x": [float(v) for v in x],
            "q": qs,
            "percentiles": [float(np.percentile(x, q)) for q in qs],
            "mean": float(np.mean(x)),
            "std": float(np.std(x, ddof=1)) if len(x) > 1 else 0.0,
        })
    return out


def mwu_cases(rng):
    pairs = []
    # exact: small, no ties
    pairs.append((rng.normal(10, 1, 5), rng.normal(11, 1, 6)))
    pairs.append((rng.normal(10, 1, 8), rng.normal(10, 1, 8)))
    pairs.append((rng.normal(10, 1, 3), rng.normal(14, 1, 40)))   # exact: one side <= 8
    pairs.append((rng.normal(10, 1, 1), rng.normal(10, 1, 7)))
    pairs.append((np.arange(1.0, 9.0), np.arange(9.0, 17.0)))     # complete separation
    # asymptotic: large
    pairs.append((rng.normal(10, 1, 30), rng.normal(10.5, 1, 25)))
    pairs.append((rng.lognormal(-7, 0.2, 500), rng.lognormal(-6.95, 0.2, 400)))
    pairs.append((rng.normal(10, 1, 200), rng.normal(10, 1, 200)))
    # ties: asymptotic with tie correction even when small
    pairs.append((np.array([1.0, 2, 2, 3, 4]), np.array([2.0, 3, 3, 5, 6, 6])))
    pairs.append((np.round(rng.normal(10, 2, 60)), np.round(rng.normal(11, 2, 50))))
    out = []
    for x, y in pairs:
        r = stats.mannwhitneyu(x, y, alternative="two-sided", method="auto", use_continuity=True)
        ties = len(np.unique(np.concatenate([x, y]))) < len(x) + len(y)
        exact = not (len(x) > 8 and len(y) > 8) and not ties
        out.append({
            "x": [float(v) for v in x],
            "y": [float(v) for v in y],
            "u1": float(r.statistic),
            "p": float(r.pvalue),
            "exact": bool(exact),
        })
    return out


def change_cases(rng):
    out = []
    specs = [
        ([10.0, 12.0], [40, 40], 0.3),
        ([5.0, 8.0, 6.0], [30, 25, 35], 0.4),
        ([1.0, 1.5, 1.0, 2.0], [20, 20, 20, 20], 0.1),
        ([3.0], [60], 0.5),                      # no change
        ([100.0, 80.0], [8, 8], 1.0),            # short history, large step
    ]
    for levels, lengths, noise in specs:
        x = np.concatenate([lv + rng.normal(0, noise, n) for lv, n in zip(levels, lengths)])
        steps = list(np.cumsum(lengths)[:-1].astype(int))
        out.append({"x": [float(v) for v in x], "steps": [int(s) for s in steps],
                    "noise": noise})
    return out


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/bench/stats.json"
    rng = np.random.default_rng(20261127)
    doc = {
        "made_by": "tools/make_bench_stats_fixtures.py",
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "percentiles": percentile_cases(rng),
        "mwu": mwu_cases(rng),
        "changes": change_cases(rng),
    }
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
