#!/usr/bin/env python3
"""Reference values for the edgebench `stats` module, computed with NumPy/SciPy.

Writes tests/data/stats_reference.json (relative to the crate root), which the
Rust integration test tests/stats_reference.rs embeds with include_str!.

Usage:  pip install numpy scipy statsmodels   (statsmodels optional)
        python3 scripts/stats_reference.py

Every input vector is fixed (written out below, or drawn from a seeded NumPy
generator and rounded to 6 decimals), so re-running the script reproduces the
file exactly for the same library versions, which are recorded in it.
"""

import json
import pathlib
import platform
import re

import numpy as np
import scipy
from scipy import stats

try:
    import statsmodels
    from statsmodels.stats.multitest import multipletests
except ImportError:  # pragma: no cover - hand formula fallback
    statsmodels = None
    multipletests = None

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "stats_reference.json"
GEN = np.random.default_rng(20240601)


def r6(a):
    """Round to 6 decimals and return a plain list of floats."""
    return [float(v) for v in np.round(np.asarray(a, dtype=float), 6)]


def f(v):
    """Plain float, or None for NaN."""
    v = float(v)
    return None if np.isnan(v) else v


# ---------------------------------------------------------------- inputs
SAMPLES = {
    "n1": [7.25],
    "n2": [1.5, 4.0],
    "n3": [3.1, 1.2, 2.7],
    "n5_ties": [2.0, 3.0, 3.0, 5.0, 3.0],
    "n12": [10.2, 9.7, 10.9, 11.4, 9.9, 10.0, 10.6, 12.1, 9.5, 10.3, 10.8, 11.0],
    "n30_skewed": r6(GEN.lognormal(mean=0.0, sigma=0.6, size=30) * 100.0),
    "n100_normal": r6(GEN.normal(50.0, 5.0, size=100)),
    "negative_mean": [-3.0, -1.0, -2.5, -4.0],
}

UNPAIRED = {
    "n2_each": ([1.0, 2.0], [3.0, 5.0]),
    "small_exact": ([1.1, 2.4, 3.3, 0.7, 2.9], [3.8, 2.6, 4.1, 5.0, 3.5, 4.4]),
    "unequal_exact": (r6(GEN.normal(10.0, 1.0, 6)), r6(GEN.normal(10.8, 1.0, 40))),
    "ties_small": ([1.0, 2.0, 2.0, 3.0, 4.0, 4.0], [2.0, 3.0, 5.0, 5.0, 6.0, 4.0, 7.0]),
    "different_sizes": (r6(GEN.normal(100.0, 8.0, 12)), r6(GEN.lognormal(4.7, 0.15, 30))),
    "rounded_ties_large": (
        [float(v) for v in np.round(GEN.normal(20.0, 2.0, 25))],
        [float(v) for v in np.round(GEN.normal(21.0, 2.0, 20))],
    ),
}

_base12 = np.array(SAMPLES["n12"])
_b30 = GEN.normal(100.0, 10.0, 30)
_b60 = GEN.normal(50.0, 5.0, 60)
_b40 = GEN.normal(5.0, 1.0, 40)
PAIRED = {
    "n2": ([1.0, 2.0], [0.5, 2.5]),
    "n12_exact": (SAMPLES["n12"], r6(_base12 + GEN.normal(0.3, 0.5, 12))),
    # zeros (two) and tied |d| -> SciPy's exhaustive permutation branch
    "zeros_ties_small": (
        [5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0],
        [5.0, 5.0, 8.0, 8.0, 7.0, 12.0, 9.5, 11.0, 14.5, 11.0],
    ),
    # ties (rounded to 1 decimal) and zeros, 30 pairs -> normal approximation
    "ties_zeros_n30": (
        [float(v) for v in np.round(_b30, 1)],
        [float(v) for v in np.round(_b30 + GEN.normal(1.0, 2.0, 30), 1)],
    ),
    "n40_exact": (r6(_b40), r6(_b40 + GEN.normal(0.2, 0.6, 40))),
    "n60_asymptotic": (r6(_b60), r6(_b60 + GEN.normal(-0.4, 1.5, 60))),
    # all differences equal and non-zero: t undefined, Wilcoxon defined
    "constant_shift": ([1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 1.0, 2.0, 3.0, 4.0]),
}

HOLM = [
    [0.01, 0.04, 0.03, 0.005],
    [0.2],
    [0.5, 0.5, 0.01, 0.9],
    [0.001, 0.0125, 0.02, 0.04, 0.05, 0.3],
    [0.0, 1.0, 0.7, 0.6],
]

SHAPIRO = ["n3", "n5_ties", "n12", "n30_skewed", "n100_normal", "negative_mean"]
SHAPIRO_EXTRA = {
    "n4": [1.0, 2.0, 3.5, 9.0],
    "n6": [4.1, 3.9, 4.4, 5.0, 3.7, 4.0],
    "n11_outlier": [1.0, 1.1, 0.9, 1.05, 0.95, 1.02, 0.98, 1.01, 0.99, 1.03, 5.0],
    "n3_collinear": [1.0, 2.0, 3.0],
}

BOOT = ["n12", "n30_skewed"]
BOOT_RESAMPLES = 10_000
# Many more resamples: SciPy's interval with negligible Monte-Carlo error.
CONVERGED = 500_000
# Size of the bootstrap distribution stored verbatim for the exact BCa check.
FIXED_B = 2_000
LEVEL = 0.95


# ---------------------------------------------------------------- helpers
def descriptive(x):
    x = np.asarray(x, dtype=float)
    n = len(x)
    out = {
        "x": [float(v) for v in x],
        "mean": float(np.mean(x)),
        "median": float(np.median(x)),
        "min": float(np.min(x)),
        "max": float(np.max(x)),
        "percentile_p": [50.0, 90.0, 95.0, 99.0, 0.0, 12.5, 100.0],
    }
    out["percentiles"] = [float(v) for v in np.percentile(x, out["percentile_p"])]
    if n >= 2:
        out["variance"] = float(np.var(x, ddof=1))
        out["std_dev"] = float(np.std(x, ddof=1))
        out["cv"] = float(np.std(x, ddof=1) / np.mean(x))
    else:
        out["variance"] = out["std_dev"] = out["cv"] = None
    return out


def test_result(res, df=None):
    d = {"statistic": f(res.statistic), "p_value": f(res.pvalue)}
    if df is not None:
        d["df"] = f(df)
    return d


def rank_biserial_paired(a, b):
    d = np.asarray(a, float) - np.asarray(b, float)
    d = d[d != 0]
    r = stats.rankdata(np.abs(d))
    wp, wm = r[d > 0].sum(), r[d < 0].sum()
    return float((wp - wm) / (wp + wm))


def cohens_d_pooled(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = len(a), len(b)
    sp = np.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2))
    return float((np.mean(a) - np.mean(b)) / sp)


def wilcoxon_branch(a, b):
    d = np.asarray(a, float) - np.asarray(b, float)
    nz = d[d != 0]
    ties = len(np.unique(np.abs(nz))) < len(nz)
    zeros = len(nz) < len(d)
    if len(d) <= 50 and not ties and not zeros:
        return "exact"
    if len(d) <= 13:
        return "permutation"
    return "asymptotic"


def mwu_branch(a, b):
    ties = len(np.unique(np.concatenate([a, b]))) < len(a) + len(b)
    return "exact" if (min(len(a), len(b)) <= 8 and not ties) else "asymptotic"


def holm_hand(p):
    p = np.asarray(p, float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def boot_ci(data, statistic, method, paired=False, n_resamples=BOOT_RESAMPLES, seed=0):
    res = stats.bootstrap(
        data,
        statistic,
        n_resamples=n_resamples,
        batch=50_000,
        confidence_level=LEVEL,
        method=method,
        paired=paired,
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return [float(ci.low), float(ci.high)]


def bca_internals(x, dist):
    """(alpha_1, alpha_2, a_hat) from SciPy's own BCa helper (private API)."""
    from scipy.stats._resampling import _bca_interval

    alpha = (1 - LEVEL) / 2
    a1, a2, a_hat = _bca_interval(
        (x,), np.mean, axis=-1, alpha=alpha, theta_hat_b=dist, batch=None, xp=np
    )
    return float(a1), float(a2), float(a_hat)


def ratio_stat(b, c, axis=-1):
    return np.mean(c, axis=axis) / np.mean(b, axis=axis) - 1.0


def compact_json(obj):
    """Indented JSON with every list of numbers kept on one line."""
    text = json.dumps(obj, indent=1)
    return re.sub(
        r"\[\s*([-0-9.eE+,\s]+?)\s*\]",
        lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]",
        text,
    )


# ---------------------------------------------------------------- build
def main():
    ref = {
        "generator": "scripts/stats_reference.py",
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "statsmodels": statsmodels.__version__ if statsmodels else None,
        },
        "descriptive": {k: descriptive(v) for k, v in SAMPLES.items()},
        "unpaired": {},
        "paired": {},
        "holm": [],
        "shapiro": {},
        "bootstrap": {
            "level": LEVEL,
            "resamples": BOOT_RESAMPLES,
            "converged_resamples": CONVERGED,
            "note": "scipy.stats.bootstrap, rng=np.random.default_rng(0); '*_converged' "
            "use converged_resamples; ours differs by Monte-Carlo error only",
            "mean": {},
            "ratio_of_means": {},
            "bca_fixed_distribution": {},
        },
    }

    for name, (a, b) in UNPAIRED.items():
        a, b = np.asarray(a, float), np.asarray(b, float)
        welch = stats.ttest_ind(a, b, equal_var=False)
        mwu = stats.mannwhitneyu(a, b)
        ref["unpaired"][name] = {
            "a": [float(v) for v in a],
            "b": [float(v) for v in b],
            "welch": test_result(welch, welch.df),
            "mann_whitney": {**test_result(mwu), "branch": mwu_branch(a, b)},
            "cohens_d_pooled": cohens_d_pooled(a, b),
            "rank_biserial_unpaired": float(2.0 * mwu.statistic / (len(a) * len(b)) - 1.0),
        }

    for name, (a, b) in PAIRED.items():
        a, b = np.asarray(a, float), np.asarray(b, float)
        d = a - b
        entry = {
            "a": [float(v) for v in a],
            "b": [float(v) for v in b],
            "rank_biserial_paired": rank_biserial_paired(a, b),
        }
        if np.all(d == d[0]):
            entry["paired_t"] = None  # undefined (zero variance); Rust errors
            entry["cohens_d_paired"] = None
        else:
            t = stats.ttest_rel(a, b)
            entry["paired_t"] = test_result(t, t.df)
            entry["cohens_d_paired"] = float(np.mean(d) / np.std(d, ddof=1))
        # correction=True: continuity correction in the normal approximation
        # (SciPy's default is correction=False; see the Rust docs).
        w = stats.wilcoxon(a, b, correction=True)
        entry["wilcoxon"] = {
            **test_result(w),
            "p_value_scipy_default_no_correction": f(stats.wilcoxon(a, b).pvalue),
            "branch": wilcoxon_branch(a, b),
            "n_nonzero": int(np.count_nonzero(d)),
        }
        ref["paired"][name] = entry

    for p in HOLM:
        if multipletests is not None:
            adj = multipletests(p, method="holm")[1]
            source = "statsmodels multipletests(method='holm')"
        else:
            adj = holm_hand(p)
            source = "hand formula"
        assert np.allclose(adj, holm_hand(p), rtol=0, atol=1e-15)
        ref["holm"].append({"p": p, "adjusted": [float(v) for v in adj], "source": source})

    shapiro_inputs = {k: SAMPLES[k] for k in SHAPIRO}
    shapiro_inputs.update(SHAPIRO_EXTRA)
    for name, x in shapiro_inputs.items():
        res = stats.shapiro(x)
        ref["shapiro"][name] = {"x": [float(v) for v in x], **test_result(res)}

    for name in BOOT:
        x = np.asarray(SAMPLES[name], float)
        ref["bootstrap"]["mean"][name] = {
            "x": [float(v) for v in x],
            "estimate": float(np.mean(x)),
            "percentile": boot_ci((x,), np.mean, "percentile"),
            "bca": boot_ci((x,), np.mean, "BCa"),
            "percentile_converged": boot_ci((x,), np.mean, "percentile", n_resamples=CONVERGED),
            "bca_converged": boot_ci((x,), np.mean, "BCa", n_resamples=CONVERGED),
        }

    # Same bootstrap distribution on both sides: checks the BCa algebra
    # (jackknife acceleration, z0, adjusted levels, quantiles) exactly.
    for name in BOOT:
        x = np.asarray(SAMPLES[name], float)
        res = stats.bootstrap(
            (x,), np.mean, n_resamples=FIXED_B, method="BCa", confidence_level=LEVEL,
            rng=np.random.default_rng(1),
        )
        dist = res.bootstrap_distribution
        alpha_1, alpha_2, a_hat = bca_internals(x, dist)
        # Our z0 counts resamples within 1e-12 (relative) of the estimate as
        # ties; SciPy compares exactly. Snap such near-ties onto the estimate
        # and let SciPy's helper compute the levels we expect.
        est = np.mean(x)
        snapped = np.where(np.abs(dist - est) <= 1e-12 * abs(est), est, dist)
        tol_1, tol_2, _ = bca_internals(x, snapped)
        ref["bootstrap"]["bca_fixed_distribution"][name] = {
            "x": [float(v) for v in x],
            "distribution": [float(v) for v in dist],
            "near_ties_with_estimate": int(np.count_nonzero(
                (np.abs(dist - est) <= 1e-12 * abs(est)) & (dist != est))),
            "acceleration": float(a_hat),
            "levels_scipy": [float(alpha_1), float(alpha_2)],
            "bca_scipy": [float(res.confidence_interval.low), float(res.confidence_interval.high)],
            "levels": [tol_1, tol_2],
            "bca": [float(v) for v in np.quantile(dist, [tol_1, tol_2])],
            "percentile": [float(v) for v in np.quantile(dist, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])],
        }

    ratio_cases = {
        "paired_n12": (PAIRED["n12_exact"], True),
        "unpaired_12_30": (UNPAIRED["different_sizes"], False),
    }
    for name, ((b, c), paired) in ratio_cases.items():
        b, c = np.asarray(b, float), np.asarray(c, float)
        ref["bootstrap"]["ratio_of_means"][name] = {
            "baseline": [float(v) for v in b],
            "candidate": [float(v) for v in c],
            "paired": paired,
            "estimate": float(ratio_stat(b, c)),
            "percentile": boot_ci((b, c), ratio_stat, "percentile", paired=paired),
            "percentile_converged": boot_ci(
                (b, c), ratio_stat, "percentile", paired=paired, n_resamples=CONVERGED
            ),
        }

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(compact_json(ref) + "\n")
    print(f"wrote {OUT} (numpy {np.__version__}, scipy {scipy.__version__})")


if __name__ == "__main__":
    main()
