"""Fashion-MNIST-LT accuracy study: baselines and Table 4's ablation rows over seeds.

Runs the `fashion_mnist_lt` recipe exactly as a user would (flags only), one
run per row and seed, skipping runs whose `metrics.json` already exists (so a
study can be collected over several sittings), then writes a Markdown table
(mean and 95 % t-interval over seeds) and a bar chart.

  python tools/ablation_study.py --seeds=0,1,2,3,4 --out=runs/study
  python tools/ablation_study.py --rows=mislas,lcreg --seeds=0 --extra="--epochs=4"
  python tools/ablation_study.py --collect_only --out=runs/study
  python tools/ablation_study.py --rows=baselines --baseline=ce --out=runs/baselines
  python tools/ablation_study.py --workers=2 --threads=1 ...   # two runs at once
  python tools/ablation_study.py --rows=screening --seeds=0,1,2,3,4 --out=runs/screen
  python tools/ablation_study.py --rows=table4_parts --seeds=0,1,2,3,4 --out=runs/screen

Every run gets `--subset_seed=0` (`--subset_seed` here): the long-tailed
training subset is the same for every seed, as in MiSLAS, so a paired
difference measures the method, not the data draw. Runs made before that flag
existed drew the subset with the run seed: do not mix them into one `--out`.

On a small CPU, several single-threaded runs side by side finish a study sooner
than one run using every core (2 cores here: about 300 img/s per one-thread
run against about 500 for one two-thread run). `--workers` runs that many at
once, each pinned to its own `--threads` cores with TensorFlow's and OpenMP's
thread pools sized to match (`benchmark.thread_environment`).

Rows:
  ce            plain cross-entropy: no latents, no mixup, stage one only
  mislas        MiSLAS-style: mixup stage one, then stage two
  latent_only   + latent categories (no L_aug, no L_recon), both stages
  latent_aug    + latent categories + L_aug
  latent_recon  + latent categories + L_recon
  lcreg         LCReg: latent categories + L_aug + L_recon, both stages
  lcreg_tau0.1, lcreg_cosine, lcreg_m10, lcreg_lambda0.1, lcreg_replace
                LCReg with one choice changed (asked for by name only)
  (latent_only above removes L_aug; the t4_ rows below follow the spec's Table 4.)

Readings of Eq. 5-6 (spec Sec. 3): latents (3.a), parts (3.b),
latents_explicit and parts_explicit (3.c on top), parts_tau0.1 (parts with a
sharper Eq. 2). For each reading R:
  lcreg_R           LCReg, all components, samples of reading R
  t4_only_R         latent category only: L_aug at lambda_0 = 0 (plain CE on the
                    latent classes), no L_recon
  t4_aug_R          + latent aug (lambda ramps to lambda_0), no L_recon
  t4_recon_R        + reconstruction, lambda_0 = 0
  t4_fusion_none_R  LCReg with fusion=none (latents act only through the losses)
Groups (for --rows): default, baselines (below), screening = mislas + lcreg_R for every reading;
table4_R = mislas, t4_only_R, t4_aug_R, t4_recon_R, lcreg_R, t4_fusion_none_R.

The table reports, beside accuracy, each auxiliary term's share of the loss
(`share_aug`, `share_recon`, in %: the mean over the stage-one epochs after the
first tenth, from history.csv) and the last epoch's latent usage.

Long-tailed baselines (`--rows=baselines` runs ce and these with mislas and
lcreg). Their stage one is plain instance-balanced training without mixup, as
in each paper (Menon et al., Ren et al., Cao et al., Kang et al., Cui et al.);
only mislas and lcreg mix:
  ce_posthoc_la     ce's model, evaluated with post-hoc logit adjustment (tau 1)
  la_loss           logit-adjusted cross-entropy (tau 1)
  balanced_softmax  balanced softmax
  ldam_drw          LDAM (cosine classifier, s 30, max margin 0.5) + DRW from 0.8 x epochs
  crt               cRT (classifier re-trained on class-balanced batches) over ce's stage one
  tau_norm          ce stage one on 90 % of the training data, tau chosen on the other 10 %
  lws, cb_softmax, cb_focal   (asked for by name only)
ce_posthoc_la evaluates ce's model, crt and lws start from a copy of ce's
stage one (`REUSES`): the same seed's ce run is their stage one, so the paired
difference with ce is the post-hoc step or the second stage alone.
"""

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time

from benchmark import thread_environment

ROWS = {
    "ce": ["--latent=false", "--mixup_alpha=0", "--stage=1"],
    "mislas": ["--latent=false", "--stage=both"],
    "latent_only": ["--latent_aug=false", "--latent_recon=false", "--stage=both"],
    "latent_aug": ["--latent_recon=false", "--stage=both"],
    "latent_recon": ["--latent_aug=false", "--stage=both"],
    "lcreg": ["--stage=both"],
    # Sensitivity of LCReg to the choices the paper leaves open or the spec
    # flags (not in the default rows): a sharper Eq. 2 softmax, cosine
    # similarity (no saturated sigmoid), fewer latents, a weaker ISDA, and
    # replacing instead of adding the reconstruction.
    "lcreg_tau0.1": ["--stage=both", "--temperature=0.1"],
    "lcreg_cosine": ["--stage=both", "--similarity=cosine"],
    "lcreg_m10": ["--stage=both", "--num_latents=10"],
    "lcreg_lambda0.1": ["--stage=both", "--isda_lambda0=0.1"],
    "lcreg_replace": ["--stage=both", "--fusion=replace"],
    # Long-tailed baselines (issue 15): stage one without latents or mixup.
    "ce_posthoc_la": ["--latent=false", "--mixup_alpha=0", "--stage=1", "--posthoc_tau=1"],
    "la_loss": ["--latent=false", "--mixup_alpha=0", "--stage=1", "--loss=logit_adjusted",
                "--la_tau=1"],
    "balanced_softmax": ["--latent=false", "--mixup_alpha=0", "--stage=1",
                         "--loss=balanced_softmax"],
    "ldam_drw": ["--latent=false", "--mixup_alpha=0", "--stage=1", "--loss=ldam_drw"],
    "crt": ["--latent=false", "--mixup_alpha=0", "--stage=both", "--stage2=crt"],
    "tau_norm": ["--latent=false", "--mixup_alpha=0", "--stage=both", "--stage2=tau_norm"],
    "lws": ["--latent=false", "--mixup_alpha=0", "--stage=both", "--stage2=lws"],
    "cb_softmax": ["--latent=false", "--mixup_alpha=0", "--stage=1", "--loss=cb_softmax"],
    "cb_focal": ["--latent=false", "--mixup_alpha=0", "--stage=1", "--loss=cb_focal"],
}
READINGS = {
    "latents": ["--latent_aug_samples=latents"],
    "parts": ["--latent_aug_samples=parts"],
    "latents_explicit": ["--latent_aug_samples=latents", "--latent_aug_explicit=true"],
    "parts_explicit": ["--latent_aug_samples=parts", "--latent_aug_explicit=true"],
    "parts_tau0.1": ["--latent_aug_samples=parts", "--temperature=0.1"],
}
# Table 4's components as the spec defines them (Sec. 3, "Table 4's rows").
TABLE4 = {
    "t4_only": ["--isda_lambda0=0", "--latent_recon=false"],
    "t4_aug": ["--latent_recon=false"],
    "t4_recon": ["--isda_lambda0=0"],
    "t4_fusion_none": ["--fusion=none"],
}
ROW_GROUPS = {"screening": ["mislas"] + [f"lcreg_{r}" for r in READINGS]}
for _reading, _flags in READINGS.items():
    ROWS[f"lcreg_{_reading}"] = ["--stage=both", *_flags]
    for _component, _extra in TABLE4.items():
        ROWS[f"{_component}_{_reading}"] = ["--stage=both", *_flags, *_extra]
    ROW_GROUPS[f"table4_{_reading}"] = (
        ["mislas"] + [f"{c}_{_reading}" for c in TABLE4 if c != "t4_fusion_none"]
        + [f"lcreg_{_reading}", f"t4_fusion_none_{_reading}"]
    )
DEFAULT_ROWS = ("ce", "mislas", "latent_only", "latent_aug", "latent_recon", "lcreg")
BASELINE_ROWS = ("ce", "ce_posthoc_la", "la_loss", "balanced_softmax", "ldam_drw", "crt",
                 "tau_norm", "mislas", "lcreg")
ROW_GROUPS.update(default=list(DEFAULT_ROWS), baselines=list(BASELINE_ROWS))
# Rows that start from another row's finished run of the same seed, so that
# their paired difference with it measures their own step alone, as in the
# papers: cRT and LWS re-train or re-scale the classifier of the
# instance-balanced (ce) model, and post-hoc adjustment changes no weight.
#   ("stage_one", donor): the donor's stage one is copied in; only stage two runs.
#   ("evaluate", donor): the donor's final model is evaluated under the row's flags.
# The donor runs first (it is added to the jobs when not asked for); a row's
# `minutes` include the donor's.
REUSES = {"crt": ("stage_one", "ce"), "lws": ("stage_one", "ce"),
          "ce_posthoc_la": ("evaluate", "ce")}
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
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t95(n - 1) * sd / math.sqrt(n)


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


def donor_of(row):
    """The row whose run of the same seed `row` starts from (`REUSES`), or None."""
    return REUSES.get(row, (None, None))[1]


def run_one(row, seed, out, extra, cores=None, threads=None):
    """Runs one row and seed through the recipe; `cores` pins it to those CPUs.

    A row of `REUSES` starts from its donor's run of the same seed, which must
    have finished.
    """
    model_dir = os.path.join(out, row, f"seed{seed}")
    if os.path.exists(os.path.join(model_dir, "metrics.json")):
        return "done earlier"
    mode, donor = REUSES.get(row, (None, None))
    donor_dir = os.path.join(out, donor, f"seed{seed}") if donor else None
    if donor and not os.path.exists(os.path.join(donor_dir, "metrics.json")):
        return f"skipped: {donor} seed {seed} has not finished"
    flags = [f"--seed={seed}", "--verbose=2", *ROWS[row], *extra]
    if mode == "evaluate":
        cmd = [sys.executable, "-m", "lcreg_keras.recipes.evaluate", "--recipe=fashion_mnist_lt",
               f"--model={os.path.join(donor_dir, 'model.keras')}",
               f"--out={os.path.join(model_dir, 'eval')}", *flags]
    else:
        cmd = [sys.executable, "-m", "lcreg_keras.recipes.fashion_mnist_lt",
               f"--model_dir={model_dir}", *flags]
    pinned = f" (cores {','.join(map(str, cores))})" if cores else ""
    print("$ " + " ".join(cmd[1:]) + pinned, flush=True)
    start = time.time()
    os.makedirs(model_dir, exist_ok=True)
    if mode == "stage_one":
        copy_stage_one(donor_dir, model_dir)
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    with open(os.path.join(model_dir, "log.txt"), "a") as log:
        code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT,
                               env=thread_environment(threads), preexec_fn=pin)
    seconds = time.time() - start
    if donor and code == 0:
        record_reuse(model_dir, donor_dir, donor, mode, seconds)
    return f"exit {code} in {seconds / 60:.1f} min"


def copy_stage_one(donor_dir, model_dir):
    """The donor's finished stage one and its manifest, so the recipe skips stage one.

    The recipe checks the copied `run.json` against the row's own flags: a
    row whose stage one differs from its donor's is refused, not retrained.
    """
    for name in ("run.json", "preprocessing.json"):
        shutil.copyfile(os.path.join(donor_dir, name), os.path.join(model_dir, name))
    stage1 = os.path.join(model_dir, "stage1")
    if not os.path.exists(os.path.join(stage1, "done.json")):
        shutil.rmtree(stage1, ignore_errors=True)
        shutil.copytree(os.path.join(donor_dir, "stage1"), stage1)


def record_reuse(model_dir, donor_dir, donor, mode, seconds):
    """Notes the donor in the row's metrics.json (an evaluation's is written here)."""
    with open(os.path.join(donor_dir, "metrics.json")) as f:
        donor_seconds = json.load(f)["total_seconds"]
    path = os.path.join(model_dir, "metrics.json")
    if mode == "evaluate":
        with open(os.path.join(model_dir, "eval", "report.json")) as f:
            report = json.load(f)
        metrics = {key: report[key] for key in ("top1", "splits", "ece", "nll", "posthoc_tau")}
        metrics["total_seconds"] = round(seconds, 1)
    else:
        with open(path) as f:
            metrics = json.load(f)
    metrics["reused"] = {"row": donor, "mode": mode, "seconds": donor_seconds}
    with open(path + ".tmp", "w") as f:
        json.dump(metrics, f, indent=2)
    os.replace(path + ".tmp", path)


def plan_jobs(rows, seeds):
    """(row, seed) jobs, seed by seed, each donor of `REUSES` before the rows it serves."""
    jobs = []
    for seed in seeds:
        for row in rows:
            donor = donor_of(row)
            if donor and (donor, seed) not in jobs:
                jobs.append((donor, seed))
            if (row, seed) not in jobs:
                jobs.append((row, seed))
    return jobs


def run_all(jobs, out, extra, workers, threads, run=run_one):
    """Runs (row, seed) jobs in order on `workers` runners, each on its own cores.

    A row of `REUSES` is not started while another runner still runs its donor:
    that runner takes the next job that is not blocked, else waits.
    """
    available = sorted(os.sched_getaffinity(0))
    if workers * (threads or 1) > len(available):
        raise SystemExit(f"--workers={workers} x --threads={threads} needs more than the "
                         f"{len(available)} CPUs this process may use")
    todo = list(jobs)
    started, finished = set(), set()
    changed = threading.Condition()

    def ready(job):
        donor = (donor_of(job[0]), job[1])
        return donor not in started or donor in finished

    def take():
        """The first job whose donor is not running now (waits while all are blocked); None at the end."""
        with changed:
            while todo:
                job = next((j for j in todo if ready(j)), None)
                if job is not None:
                    todo.remove(job)
                    started.add(job)
                    return job
                changed.wait()
            return None

    def work(index):
        cores = None
        if workers > 1:
            size = threads or 1
            cores = available[index * size:(index + 1) * size]
        while (job := take()) is not None:
            row, seed = job
            try:
                result = run(row, seed, out, extra, cores, threads)
            finally:
                with changed:
                    finished.add(job)
                    changed.notify_all()
            print(f"{row} seed {seed}: {result}", flush=True)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def history_rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def last_row(path):
    rows = history_rows(path)
    return rows[-1] if rows else {}


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


def paired_difference(runs, baseline_runs, key="overall"):
    """Mean and 95 % half-width of `run - baseline` over the seeds both have.

    Runs with the same seed share the data order, the initialisation seed and
    the augmentation draws, so the paired difference is far less noisy than
    the difference of two means.
    """
    base = {run["seed"]: run[key] for run in baseline_runs}
    differences = [run[key] - base[run["seed"]] for run in runs if run["seed"] in base]
    if not differences:
        return None
    return mean_interval(differences) + (len(differences),)


def paired_sd(runs, baseline_runs, key="overall"):
    """Standard deviation of `run - baseline` over the seeds both have (None under 2)."""
    base = {run["seed"]: run[key] for run in baseline_runs}
    differences = [run[key] - base[run["seed"]] for run in runs if run["seed"] in base]
    if len(differences) < 2:
        return None
    mean = sum(differences) / len(differences)
    return math.sqrt(sum((d - mean) ** 2 for d in differences) / (len(differences) - 1))


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
            values = [run[key] for run in runs if key in run and not math.isnan(run[key])]
            if not values:
                cells.append("-")
                continue
            mean, half = mean_interval(values)
            cells.append(f"{mean:.2f} ± {half:.2f}" if len(values) > 1 else f"{mean:.2f}")
        if paired:
            diff = None if row == baseline else paired_difference(runs, table[baseline])
            cells.append("-" if diff is None else f"{diff[0]:+.2f} ± {diff[1]:.2f} (n={diff[2]})")
            sd = None if row == baseline else paired_sd(runs, table[baseline])
            cells.append("-" if sd is None else str(seeds_needed(sd)))
        lines.append(f"| {row} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_chart(table, path, baseline=None):
    """Split accuracies per row; beside them, each row minus `baseline`, paired by seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(table)
    others = [row for row in rows if row != baseline] if baseline in table else []
    fig, axes = plt.subplots(1, 2 if others else 1, figsize=(13 if others else 9, 4.2),
                             gridspec_kw={"width_ratios": [2.2, 1]} if others else None)
    ax = axes[0] if others else axes
    width = 0.8 / len(COLUMNS)
    lowest = 100.0
    for i, column in enumerate(COLUMNS):
        stats = []
        for row in rows:
            values = [r[column] for r in table[row] if not math.isnan(r[column])]
            stats.append(mean_interval(values) if values else (float("nan"), 0.0))
        lowest = min([lowest] + [m - h for m, h in stats if not math.isnan(m)])
        ax.bar([x + i * width for x in range(len(rows))], [s[0] for s in stats], width,
               yerr=[s[1] for s in stats], capsize=3, label=column)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(rows))], rows, rotation=20)
    # The bars start near the lowest interval, not at 0: the differences matter.
    ax.set_ylim(max(0.0, 10 * math.floor(lowest / 10) - 10), 112)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Fashion-MNIST-LT (IF 100): mean and 95 % interval over seeds")
    ax.legend(ncols=4, loc="upper center")
    if others:
        diffs = [paired_difference(table[row], table[baseline]) or (float("nan"), 0.0, 0)
                 for row in others]
        ax = axes[1]
        ax.errorbar([d[0] for d in diffs], range(len(others)), xerr=[d[1] for d in diffs],
                    fmt="o", capsize=4)
        ax.axvline(0.0, color="grey", lw=1)
        ax.set_yticks(range(len(others)), [f"{row} (n={d[2]})" for row, d in zip(others, diffs)])
        ax.invert_yaxis()
        ax.set_xlabel(f"overall top-1 minus {baseline}, same seed (points)")
        ax.set_title("paired by seed, 95 % interval")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def expand_rows(text):
    """Row names from a comma-separated list; group names expand, repeats drop."""
    rows = []
    for name in text.split(","):
        for row in ROW_GROUPS.get(name, [name]):
            if row not in rows:
                rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS),
                        help=f"comma-separated, of: {', '.join(ROWS)}; or a group: "
                             f"{', '.join(ROW_GROUPS)}")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--out", default="runs/study")
    parser.add_argument("--extra", default="", help="more recipe flags for every run")
    parser.add_argument("--subset_seed", type=int, default=0,
                        help="seed of the long-tailed subset, the same for every run")
    parser.add_argument("--rule", default="cifar10", help="which many/medium/few rule to tabulate")
    parser.add_argument("--workers", type=int, default=1, help="runs at once, each on its own cores")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per run (default: TensorFlow's choice; 1 with --workers>1)")
    parser.add_argument("--baseline", default="mislas",
                        help="row to compare every other row with, seed by seed")
    parser.add_argument("--collect_only", action="store_true")
    parser.add_argument("--name", default="study", help="the table is OUT/NAME.md, the chart OUT/NAME.png")
    parser.add_argument("--chart", default=None, help="bar chart PNG (default: OUT/NAME.png)")
    args = parser.parse_args()
    rows = expand_rows(args.rows)
    for row in rows:
        if row not in ROWS:
            parser.error(f"unknown row {row!r}; rows: {', '.join(ROWS)}")
    if not args.collect_only:
        if args.workers < 1:
            parser.error("--workers must be at least 1")
        threads = args.threads or (1 if args.workers > 1 else None)
        jobs = plan_jobs(rows, [int(seed) for seed in args.seeds.split(",")])
        start = time.time()
        extra = [f"--subset_seed={args.subset_seed}", *args.extra.split()]
        run_all(jobs, args.out, extra, args.workers, threads)
        print(f"study time: {(time.time() - start) / 60:.1f} min")
    table = collect(args.out, rows, args.rule)
    if not table:
        print("no finished runs yet")
        return
    text = markdown(table, args.baseline)
    print(text)
    with open(os.path.join(args.out, f"{args.name}.md"), "w") as f:
        f.write(text + "\n")
    bar_chart(table, args.chart or os.path.join(args.out, f"{args.name}.png"), args.baseline)


if __name__ == "__main__":
    main()
