"""Fashion-MNIST-LT accuracy study: baselines and Table 4's ablation rows over seeds.

Runs the `fashion_mnist_lt` recipe exactly as a user would (flags only), one
run per row and seed, skipping runs whose `metrics.json` already exists (so a
study can be collected over several sittings), then writes a Markdown table
(mean and 95 % t-interval over seeds) and a bar chart.

  python tools/ablation_study.py --seeds=0,1,2,3,4 --out=runs/study
  python tools/ablation_study.py --rows=mislas,lcreg --seeds=0 --extra="--epochs=4"
  python tools/ablation_study.py --collect_only --out=runs/study
  python tools/ablation_study.py --collect_only --decide --rows=mislas,a,b --out=runs/study
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
thread pools sized to match (`bench_common.thread_environment`).

The rows and groups are in `study_rows.py`, the table and chart in
`study_report.py`.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

from bench_common import thread_environment
from study_report import bar_chart, collect, decide, decision_text, markdown
from study_rows import DEFAULT_ROWS, REUSES, ROW_GROUPS, ROWS, donor_of, expand_rows


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
    durations = []  # seconds of each job run here (not those done earlier)
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
            start = time.time()
            try:
                result = run(row, seed, out, extra, cores, threads)
            finally:
                with changed:
                    finished.add(job)
                    changed.notify_all()
            with changed:
                if result.startswith("exit"):
                    durations.append(time.time() - start)
                print(f"{row} seed {seed}: {result}{progress()}", flush=True)

    def progress():
        """` [k run, n to go, about T left]` once a run has been timed (under the lock)."""
        if not durations:
            return ""
        to_go = len(started - finished) + sum(
            not os.path.exists(os.path.join(out, r, f"seed{s}", "metrics.json")) for r, s in todo)
        hours = to_go * sum(durations) / len(durations) / workers / 3600
        return f" [{len(durations)} run, {to_go} to go, about {hours:.1f} h left]"

    pool = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

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
    parser.add_argument("--decide", action="store_true",
                        help="apply the default-choosing rule (study_report.decide): every row but "
                             "--baseline is a candidate, paired intervals Bonferroni-corrected")
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
    if args.decide:
        if args.baseline not in table or len(table) < 2:
            parser.error(f"--decide needs finished runs of --baseline={args.baseline} and another row")
        text += "\n\n" + decision_text(decide(table, args.baseline), args.baseline)
    print(text)
    with open(os.path.join(args.out, f"{args.name}.md"), "w") as f:
        f.write(text + "\n")
    bar_chart(table, args.chart or os.path.join(args.out, f"{args.name}.png"), args.baseline)

if __name__ == "__main__":
    main()
