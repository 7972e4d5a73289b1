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
# Two-sided 95 % Student t quantiles (the 97.5 % point) by degrees of freedom.
T95 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 6: 2.4469, 7: 2.3646,
       8: 2.3060, 9: 2.2622}


def t95(df):
    """97.5 % point of Student's t; beyond the table, the Cornish-Fisher series.

    Four terms are within 2e-4 of the exact value from 10 degrees
    of freedom on.
    """
    if df in T95:
        return T95[df]
    z = 1.959964
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


def mean_interval(values):
    """Mean and half-width of the 95 % t-interval (0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, t95(n - 1) * sample_sd(values) / math.sqrt(n)


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


def paired_sd(runs, baseline_runs, key="overall"):
    """Standard deviation of the paired differences (None under 2)."""
    differences = paired_differences(runs, baseline_runs, key)
    if len(differences) < 2:
        return None
    return sample_sd(differences)


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
            diff = None if row == baseline else paired_difference(runs, table[baseline])
            cells.append("-" if diff is None else f"{diff[0]:+.2f} ± {diff[1]:.2f} (n={diff[2]})")
            sd = None if row == baseline else paired_sd(runs, table[baseline])
            cells.append("-" if sd is None else str(seeds_needed(sd)))
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
