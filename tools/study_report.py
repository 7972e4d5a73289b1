"""What a study's finished runs say: the table, the paired statistics, the chart.

The table reports, beside accuracy, each auxiliary term's share of the loss
(`share_aug`, `share_recon`, in %: the mean over the stage-one epochs after the
first tenth, from history.csv) and the last epoch's latent usage.

Intervals are Student-t 95 % intervals over seeds; a paired difference
compares two rows seed by seed (the same data order, initialisation and
augmentation draws), which is far less noisy than two means.
"""

import csv
import json
import math
import os

COLUMNS = ("overall", "many", "medium", "few")
DIAGNOSTICS = ("latents_in_use", "top_latent_share", "saturated_fraction")
# Each auxiliary term's share of Eq. 7's loss: (log key, loss term, weight flag).
SHARES = (("share_aug", "loss_aug", "alpha"), ("share_recon", "loss_recon", "beta"))


def t_cdf(t, df):
    """P(T <= t) for Student's t with `df` degrees of freedom.

    Through the regularised incomplete beta function:
    P(|T| > t) = I_x(df / 2, 1 / 2) with x = df / (df + t^2).
    """
    tail = 0.5 * _incomplete_beta(df / (df + t * t), df / 2, 0.5)
    return 1 - tail if t >= 0 else tail


def t_quantile(p, df):
    """The `p` quantile of Student's t (bisection on `t_cdf`, to 1e-10)."""
    if not 0 < p < 1:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, 2 * high
    while high - low > 1e-10 * max(1.0, high):
        middle = (low + high) / 2
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return (low + high) / 2


def t95(df):
    """97.5 % point of Student's t: the half-width factor of a 95 % interval."""
    return t_quantile(0.975, df)


def _incomplete_beta(x, a, b):
    """Regularised incomplete beta I_x(a, b), by its continued fraction (modified Lentz).

    The fraction converges fast for x < (a + 1) / (a + b + 2); above that the
    symmetry I_x(a, b) = 1 - I_{1-x}(b, a) brings x below it.
    """
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1 - _incomplete_beta(1 - x, b, a)
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        # The even step, then the odd step, of the fraction's terms.
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return math.exp(log_front) * fraction / a


def mean_interval(values, level=0.95):
    """Mean and half-width of the two-sided t-interval at `level` (0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, t_quantile(1 - (1 - level) / 2, n - 1) * sample_sd(values) / math.sqrt(n)


def sample_sd(values):
    """Standard deviation with n - 1 in the denominator."""
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def seeds_needed(sd, effect=0.5, z_power=0.841621):
    """Seeds a paired two-sided t-test (5 %) needs to find `effect` with 80 % power.

    The smallest n with sqrt(n) * effect / sd >= t_0.975(n - 1) + z_0.8, at the
    standard deviation `sd` of the paired differences measured so far.
    """
    if sd <= 0:
        return 2
    n = 2
    while math.sqrt(n) * effect / sd < t95(n - 1) + z_power:
        n += 1
    return n


def paired_differences(runs, baseline_runs, key="overall"):
    """`run - baseline` for each seed both rows have.

    Runs with the same seed share the data order, the initialisation seed and
    the augmentation draws, so the paired difference is far less noisy than
    the difference of two means.
    """
    base = {run["seed"]: run[key] for run in baseline_runs}
    return [run[key] - base[run["seed"]] for run in runs if run["seed"] in base]


def paired_difference(runs, baseline_runs, key="overall"):
    """Mean, 95 % half-width and count of the paired differences (None without any)."""
    differences = paired_differences(runs, baseline_runs, key)
    if not differences:
        return None
    return mean_interval(differences) + (len(differences),)


def decide(table, baseline, level=0.95, key="overall"):
    """The rule that picks a default from a study, fixed before its runs finish.

    Each row other than `baseline` is a candidate. Its paired difference to
    `baseline` gets a Bonferroni-corrected t-interval: with k candidates, each
    interval has level 1 - (1 - level) / k, so all k hold together at `level`.
    The winner is the candidate with the largest mean difference among those
    whose interval lies above 0; None when no interval does.

    Returns {"level_each", "rows": [{"row", "mean", "half", "n", "t", "sd",
    "seeds_needed", "above_zero"}], "winner"}.
    """
    candidates = [row for row in table if row != baseline]
    if baseline not in table or not candidates:
        raise ValueError(f"decide needs {baseline!r} and at least one other row in the table")
    level_each = 1 - (1 - level) / len(candidates)
    rows = []
    for row in candidates:
        differences = paired_differences(table[row], table[baseline], key)
        n = len(differences)
        entry = {"row": row, "n": n, "mean": math.nan, "half": math.inf, "t": math.nan,
                 "sd": math.nan, "seeds_needed": None, "above_zero": False}
        if n:
            entry["mean"] = sum(differences) / n
        if n >= 2:
            entry["mean"], entry["half"] = mean_interval(differences, level_each)
            entry["sd"] = sample_sd(differences)
            entry["t"] = t_quantile(1 - (1 - level_each) / 2, n - 1)  # for the text
            entry["seeds_needed"] = seeds_needed(entry["sd"])
            entry["above_zero"] = entry["mean"] - entry["half"] > 0
        rows.append(entry)
    above = [entry for entry in rows if entry["above_zero"]]
    winner = max(above, key=lambda entry: entry["mean"])["row"] if above else None
    return {"level_each": level_each, "rows": rows, "winner": winner}


def decision_text(decision, baseline, key="overall"):
    """`decide`'s result as Markdown: one line per candidate, then the choice."""
    k = len(decision["rows"])
    lines = [f"Decision rule: {key} top-1 minus `{baseline}`, paired by seed; Bonferroni over "
             f"{k} row{'s' if k > 1 else ''}, {100 * decision['level_each']:.2f} % each.", ""]
    for entry in decision["rows"]:
        if entry["n"] < 2:
            lines.append(f"- `{entry['row']}`: {entry['n']} paired seed(s), no interval")
            continue
        low, high = entry["mean"] - entry["half"], entry["mean"] + entry["half"]
        verdict = "above 0" if entry["above_zero"] else "includes 0" if low <= 0 <= high else "below 0"
        lines.append(f"- `{entry['row']}`: {entry['mean']:+.2f} ± {entry['half']:.2f} "
                     f"(t = {entry['t']:.3f} at {entry['n'] - 1} df, n = {entry['n']}), "
                     f"[{low:+.2f}, {high:+.2f}], {verdict}; sd {entry['sd']:.2f}, "
                     f"{entry['seeds_needed']} seeds would find 0.5 with 80 % power")
    lines.append("")
    if decision["winner"]:
        lines.append(f"Chosen: `{decision['winner']}`, the largest mean gain among the rows above 0.")
    else:
        lines.append("Chosen: none. No row's corrected interval lies above 0, so the default stays.")
    return "\n".join(lines)


def history_rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def loss_shares(history, config):
    """Mean `share_aug` / `share_recon` over the epochs after the first tenth.

    Histories written before the shares were logged give them from the loss
    columns and the run's alpha, beta, gamma (per-epoch means, so a ratio of
    means rather than a mean of per-step ratios).
    """
    skip = math.ceil(0.1 * len(history))
    rows = history[skip:] or history
    shares = {}
    for share, term, weight in SHARES:
        values = []
        for row in rows:
            if row.get(share) not in (None, ""):
                values.append(float(row[share]))
            elif row.get(term) not in (None, "") and row.get("loss_cls") not in (None, ""):
                weighted = {t: config.get(w, 0.1) * float(row[t])
                            for _, t, w in SHARES if row.get(t) not in (None, "")}
                total = config.get("gamma", 1.0) * float(row["loss_cls"]) + sum(weighted.values())
                values.append(weighted[term] / total if total > 0 else math.nan)
        if values:
            shares[share] = 100 * sum(values) / len(values)  # percent
    return shares


def collect(out, rows, rule):
    table = {}
    for row in rows:
        runs = []
        folder = os.path.join(out, row)
        for seed_dir in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            path = os.path.join(folder, seed_dir, "metrics.json")
            if not os.path.exists(path):
                continue
            with open(path) as f:
                metrics = json.load(f)
            split = metrics["splits"][rule]
            entry = {c: 100 * split[c] for c in COLUMNS}
            entry["seed"] = seed_dir
            # Before the stage-two re-balancing (the same as overall for stage-one rows).
            stage1 = metrics.get("stages", {}).get("stage1", {})
            entry["stage1"] = 100 * stage1.get("top1", metrics.get("top1", math.nan))
            for key in ("ece", "nll"):
                if key in metrics:
                    entry[key] = metrics[key] * (100 if key == "ece" else 1)
            history = history_rows(os.path.join(folder, seed_dir, "stage1", "history.csv"))
            last = history[-1] if history else {}
            for key in DIAGNOSTICS:
                if last.get(key) not in (None, ""):
                    entry[key] = float(last[key])
            entry.update(loss_shares(history, metrics.get("config", {})))
            reused = metrics.get("reused", {}).get("seconds", 0.0)
            entry["minutes"] = (metrics["total_seconds"] + reused) / 60
            runs.append(entry)
        if runs:
            table[row] = runs
    return table


def markdown(table, baseline=None):
    keys = (list(COLUMNS) + ["stage1", "ece", "nll"] + [s for s, _, _ in SHARES]
            + list(DIAGNOSTICS) + ["minutes"])
    keys = [k for k in keys if any(k in run for runs in table.values() for run in runs)]
    paired = baseline in table
    head = ["row", "seeds"] + keys + (
        [f"overall - {baseline} (paired)", "seeds for 0.5 (80 % power)"] if paired else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, runs in table.items():
        cells = []
        for key in keys:
            count = sum(key in run and not math.isnan(run[key]) for run in runs)
            mean, half = row_interval(runs, key)
            cells.append("-" if not count else f"{mean:.2f} ± {half:.2f}" if count > 1 else f"{mean:.2f}")
        if paired:
            differences = [] if row == baseline else paired_differences(runs, table[baseline])
            mean, half = mean_interval(differences) if differences else (None, None)
            cells.append("-" if mean is None else f"{mean:+.2f} ± {half:.2f} (n={len(differences)})")
            cells.append(str(seeds_needed(sample_sd(differences))) if len(differences) > 1 else "-")
        lines.append(f"| {row} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_chart(table, path, baseline=None):
    """Split accuracies per row; beside them, each row minus `baseline` paired by
    seed, and each row's ECE, when the runs have them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(table)
    others = [row for row in rows if row != baseline] if baseline in table else []
    with_ece = any("ece" in run for runs in table.values() for run in runs)
    lower = (["paired"] if others else []) + (["ece"] if with_ece else [])
    # The accuracy bars across the top; the paired differences and the ECE below them.
    fig = plt.figure(figsize=(max(9.0, 0.85 * len(rows) + 2), 4.4 + (0.3 * len(rows) + 1.5 if lower else 0)))
    grid = fig.add_gridspec(2 if lower else 1, max(1, len(lower)),
                            height_ratios=[4.4, 0.3 * len(rows) + 1.5] if lower else None,
                            width_ratios=[1.4 if p == "paired" else 1.0 for p in lower] or None)
    axes = {"accuracy": fig.add_subplot(grid[0, :])}
    axes.update({p: fig.add_subplot(grid[1, i]) for i, p in enumerate(lower)})
    ax = axes["accuracy"]
    width = 0.8 / len(COLUMNS)
    lowest = 100.0
    for i, column in enumerate(COLUMNS):
        stats = [row_interval(table[row], column) for row in rows]
        lowest = min([lowest] + [m - h for m, h in stats if not math.isnan(m)])
        ax.bar([x + i * width for x in range(len(rows))], [s[0] for s in stats], width,
               yerr=[s[1] for s in stats], capsize=3, label=column)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(rows))], rows, rotation=30, ha="right")
    # The bars start near the lowest interval, not at 0: the differences matter.
    ax.set_ylim(max(0.0, 10 * math.floor(lowest / 10) - 10), 112)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Fashion-MNIST-LT (IF 100): mean and 95 % interval over seeds")
    ax.legend(ncols=4, loc="upper center")
    if others:
        diffs = [paired_difference(table[row], table[baseline]) or (float("nan"), 0.0, 0)
                 for row in others]
        ax = axes["paired"]
        ax.errorbar([d[0] for d in diffs], range(len(others)), xerr=[d[1] for d in diffs],
                    fmt="o", capsize=4)
        ax.axvline(0.0, color="grey", lw=1)
        ax.set_yticks(range(len(others)), [f"{row} (n={d[2]})" for row, d in zip(others, diffs)])
        ax.invert_yaxis()
        ax.set_xlabel(f"overall top-1 minus {baseline}, same seed (points)")
        ax.set_title("paired by seed, 95 % interval")
    if with_ece:
        stats = [row_interval(table[row], "ece") for row in rows]
        ax = axes["ece"]
        ax.barh(range(len(rows)), [s[0] for s in stats], xerr=[s[1] for s in stats], capsize=3,
                color="tab:gray")
        ax.set_yticks(range(len(rows)), rows)
        ax.invert_yaxis()
        ax.set_xlabel("ECE (%, 15 bins; lower is better)")
        ax.set_title("calibration")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def row_interval(runs, key):
    """Mean and 95 % half-width of `key` over a row's runs that have it (nan without any)."""
    values = [run[key] for run in runs if key in run and not math.isnan(run[key])]
    return mean_interval(values) if values else (float("nan"), 0.0)
