"""tools/ablation_study.py and tools/benchmark.py: they run and report.

No speed is asserted (speed is not a test): the benchmark tests check that
every reported number exists and is sane, the study tests that runs are
collected, resumed and tabulated with the right statistics.
"""

import csv
import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.fakes import fake_fashion_mnist
from tests.tiny_model import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import ablation_study  # noqa: E402
import study_report  # noqa: E402
import study_rows  # noqa: E402

pytestmark = pytest.mark.skipif(
    keras.config.backend() != "tensorflow", reason="the tools' tests run on TensorFlow"
)


def run_tool(args, timeout=600, check=True):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_mean_interval_is_the_student_t_interval():
    values = [71.2, 74.9, 73.0, 70.4, 75.5]
    mean, half = study_report.mean_interval(values)
    sd = np.std(values, ddof=1)
    # 97.5 % quantile of Student's t with 4 degrees of freedom.
    assert mean == pytest.approx(np.mean(values))
    assert half == pytest.approx(2.7764 * sd / math.sqrt(5), rel=1e-4)
    assert study_report.mean_interval([3.0]) == (3.0, 0.0)
    # Past the table: printed t tables give 2.2281 (10), 2.0423 (30), 1.9840 (100).
    for df, exact in ((10, 2.2281), (30, 2.0423), (100, 1.9840)):
        assert study_report.t95(df) == pytest.approx(exact, abs=2e-4)


def test_t_quantile_matches_printed_tables_and_monte_carlo():
    # Printed t tables: 99.5 % at 4 df 4.6041, at 7 df 3.4995; 97.5 % at 1 df 12.7062, at 7 df 2.3646.
    for p, df, printed in ((0.995, 4, 4.6041), (0.995, 7, 3.4995), (0.975, 1, 12.7062),
                           (0.975, 7, 2.3646)):
        assert study_report.t_quantile(p, df) == pytest.approx(printed, abs=1e-4)
    assert study_report.t_quantile(0.025, 7) == pytest.approx(-2.3646, abs=1e-4)
    assert study_report.t_quantile(0.975, 10 ** 7) == pytest.approx(1.959964, abs=1e-5)
    # The Bonferroni point of the confirmation (3 rows, 95 % in all, 8 seeds): its tail against draws.
    q = study_report.t_quantile(1 - 0.05 / 6, 7)
    draws = np.random.default_rng(0).standard_t(7, size=2_000_000)
    tail = np.mean(draws > q)
    assert abs(tail - 0.05 / 6) < 4 * math.sqrt(0.05 / 6 / 2_000_000)  # 4 binomial standard errors
    with pytest.raises(ValueError):
        study_report.t_quantile(1.0, 3)


def decision_table():
    base = [80.0, 81.0, 79.0, 82.0, 80.5, 78.0, 81.5, 79.5]
    steady = [1.0, 1.2, 0.8, 1.1, 0.9, 1.0, 1.3, 0.7]       # mean 1.0, little spread
    noisy = [4.0, -1.0, 3.0, -0.5, 2.5, 0.0, 3.0, 1.0]      # mean 1.5, wide spread
    worse = [-0.4, -0.6, -0.5, -0.3, -0.7, -0.5, -0.4, -0.6]
    def runs(gains):
        return [{"seed": f"seed{i}", "overall": b + g} for i, (b, g) in enumerate(zip(base, gains))]
    return {"mislas": runs([0.0] * 8), "steady": runs(steady), "noisy": runs(noisy),
            "worse": runs(worse)}, {"steady": steady, "noisy": noisy, "worse": worse}


def test_decide_takes_the_largest_gain_whose_corrected_interval_is_above_zero():
    table, gains = decision_table()
    decision = study_report.decide(table, "mislas")
    assert decision["level_each"] == pytest.approx(1 - 0.05 / 3)
    by_row = {entry["row"]: entry for entry in decision["rows"]}
    for row, values in gains.items():
        half = 3.1276 * np.std(values, ddof=1) / math.sqrt(8)   # t at 98.33 %, 7 df
        assert by_row[row]["mean"] == pytest.approx(np.mean(values))
        assert by_row[row]["half"] == pytest.approx(half, rel=1e-4)
    # noisy has the larger mean, but its interval holds 0; worse lies below 0.
    assert [by_row[r]["above_zero"] for r in ("steady", "noisy", "worse")] == [True, False, False]
    assert decision["winner"] == "steady"
    text = study_report.decision_text(decision, "mislas")
    assert "Chosen: `steady`" in text and "includes 0" in text and "below 0" in text
    # Without the steady row no interval is above 0: the default stays.
    del table["steady"]
    decision = study_report.decide(table, "mislas")
    assert decision["winner"] is None and decision["level_each"] == pytest.approx(0.975)
    assert "Chosen: none" in study_report.decision_text(decision, "mislas")
    with pytest.raises(ValueError):
        study_report.decide({"mislas": table["mislas"]}, "mislas")


def test_study_cli_writes_the_decision(tmp_path):
    table, _ = decision_table()
    names = {"mislas": "mislas", "steady": "lcreg_latents_explicit", "noisy": "lcreg_latents"}
    for row, name in names.items():
        for run in table[row]:
            fake_run(tmp_path / name / run["seed"], run["overall"] / 100)
    run_tool(["tools/ablation_study.py", "--collect_only", "--decide",
              "--rows=mislas,lcreg_latents,lcreg_latents_explicit", f"--out={tmp_path}",
              "--name=confirm"])
    text = (tmp_path / "confirm.md").read_text()
    assert "Bonferroni over 2 rows, 97.50 % each" in text
    assert "Chosen: `lcreg_latents_explicit`" in text
    proc = run_tool(["tools/ablation_study.py", "--collect_only", "--decide", "--rows=lcreg_latents",
                     f"--out={tmp_path}"], check=False)
    assert proc.returncode == 2 and "--decide needs" in proc.stderr


def fake_run(folder, overall, seconds=60.0, diagnostics=None):
    os.makedirs(folder / "stage1", exist_ok=True)
    split = {"overall": overall, "many": overall + 0.1, "medium": overall, "few": overall - 0.1}
    metrics = {"splits": {"cifar10": split, "count": split}, "ece": 0.05, "nll": 0.7,
               "total_seconds": seconds}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if diagnostics:
        with open(folder / "stage1" / "history.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(diagnostics))
            writer.writeheader()
            writer.writerow({k: 0 for k in diagnostics})
            writer.writerow(diagnostics)


def test_study_collects_finished_runs_and_skips_them(tmp_path):
    fake_run(tmp_path / "ce" / "seed0", 0.70)
    fake_run(tmp_path / "ce" / "seed1", 0.74, seconds=120.0)
    fake_run(tmp_path / "lcreg" / "seed0", 0.80, diagnostics={"latents_in_use": 12.5})
    # Every run exists, so nothing is launched: "done earlier", then the table.
    proc = run_tool(["tools/ablation_study.py", "--rows=ce,lcreg", "--seeds=0", "--workers=1",
                     f"--out={tmp_path}"])
    assert "ce seed 0: done earlier" in proc.stdout
    assert "lcreg seed 0: done earlier" in proc.stdout
    table = (tmp_path / "study.md").read_text().splitlines()
    ce = next(line for line in table if line.startswith("| ce |"))
    lcreg = next(line for line in table if line.startswith("| lcreg |"))
    half = 12.7062 * np.std([70.0, 74.0], ddof=1) / math.sqrt(2)
    assert f"72.00 ± {half:.2f}" in ce and "| 2 |" in ce
    assert "1.50" in ce  # mean minutes
    assert "80.00" in lcreg and "12.50" in lcreg and "| 1 |" in lcreg
    assert (tmp_path / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_study_rejects_bad_requests(tmp_path):
    proc = run_tool(["tools/ablation_study.py", "--rows=ce,nonsense", f"--out={tmp_path}"],
                    check=False)
    assert proc.returncode != 0 and "unknown row 'nonsense'" in proc.stderr
    proc = run_tool(["tools/ablation_study.py", "--rows=ce", "--seeds=0", "--workers=4096",
                     f"--out={tmp_path}"], check=False)
    assert proc.returncode != 0 and "needs more than the" in proc.stderr
    assert not (tmp_path / "ce").exists()


def smoke_study(tmp_path, args):
    """The study tool over smoke runs on fake Fashion-MNIST: (out folder, process)."""
    data = tmp_path / "fashion"
    fake_fashion_mnist(data, n_train=9000, n_test=300, learnable=True)
    out = tmp_path / "study"
    proc = run_tool(["tools/ablation_study.py", *args, f"--out={out}",
                     f"--extra=--smoke --data_dir={data}"])
    return out, proc


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_study_runs_two_pinned_workers(tmp_path):
    out, proc = smoke_study(tmp_path, ["--rows=ce,latent_only", "--seeds=3", "--workers=2"])
    assert "(cores 0)" in proc.stdout and "(cores 1)" in proc.stdout
    for row in ("ce", "latent_only"):
        metrics = json.loads((out / row / "seed3" / "metrics.json").read_text())
        assert metrics["config"]["seed"] == 3 and metrics["config"]["max_train_examples"]
    assert json.loads((out / "ce" / "seed3" / "metrics.json").read_text())["config"]["latent"] is False
    # Stage two ran for the latent row only.
    assert os.path.exists(out / "latent_only" / "seed3" / "stage2")
    assert not os.path.exists(out / "ce" / "seed3" / "stage2")


@pytest.mark.slow
def test_step_benchmark_reports_every_number(tmp_path):
    run_tool(["tools/benchmark.py", "step", "--backends=tensorflow",
              "--variants=plain,lcreg,lcreg_parts", "--steps=2", "--batch=8", "--image_size=16",
              "--repeats=1", "--threads=1", f"--out={tmp_path}"])
    report = json.loads((tmp_path / "step.json").read_text())
    tf = report["backends"]["tensorflow"]
    for variant in ("plain", "lcreg", "lcreg_parts"):
        assert tf[variant]["img_per_s"] > 0 and tf[variant]["step_ms"] > 0
        # One thread was asked for: the process cannot keep two cores busy.
        assert 0 < tf[variant]["cores_busy"] < 1.5
    assert tf["overhead_ratio"] == pytest.approx(
        tf["plain"]["img_per_s"] / tf["lcreg"]["img_per_s"])
    assert tf["lcreg_parts"]["over_plain"] == pytest.approx(
        tf["plain"]["img_per_s"] / tf["lcreg_parts"]["img_per_s"])
    assert tf["peak_rss_mb"] > 100
    assert report["torch_reference"]["torch_reference"]["img_per_s"] > 0
    assert report["settings"]["threads"] == 1


@pytest.mark.slow
def test_levers_time_each_setting_beside_the_reference(tmp_path):
    proc = run_tool(["tools/benchmark.py", "levers", "--levers=tf_onednn,jax", "--rounds=1", "--steps=2",
                     "--batch=8", "--image_size=16", "--repeats=1", "--variants=plain,lcreg", "--threads=1",
                     f"--out={tmp_path}"])
    rounds = json.loads((tmp_path / "levers.json").read_text())["rounds"]
    assert len(rounds) == 1 and set(rounds[0]) == {"reference", "tf_onednn", "jax"}
    assert min(rounds[0].values()) > 0
    # The table's ratio is the setting over the reference of the same round.
    ratio = rounds[0]["jax"] / rounds[0]["reference"]
    assert f"| jax | {rounds[0]['jax']:.1f} | {ratio:.2f} |" in proc.stdout


@pytest.mark.slow
def test_pipeline_benchmark_reports_both_pipelines(tmp_path):
    run_tool(["tools/benchmark.py", "pipeline", "--images=8", "--batch=4", "--rounds=2",
              "--sizes=460,900", f"--out={tmp_path}"])
    report = json.loads((tmp_path / "pipeline.json").read_text())
    assert report["sizes"] == [460, 900] and len(report["rounds"]) == 2
    for row in report["rounds"]:
        names = {"tf_data", "tf_data_dct", "pil", "ops", "ops_dct"}
        assert set(row) == names | {n + "_per_cpu_s" for n in names} and min(row.values()) > 0


def test_backends_flag_is_checked_before_any_run():
    import bench_common
    assert bench_common.backends("tensorflow,,jax") == ["tensorflow", "jax"]
    assert bench_common.backends("none") == []
    proc = run_tool(["tools/benchmark.py", "step", "--backends=tensorflow,jaxx"], check=False)
    assert proc.returncode == 2 and "unknown backend jaxx" in proc.stderr


def test_profile_difference_leaves_the_backbone_ops_out():
    import bench_profile

    ops = {"_MklNativeConv2D": 110.0, "FusedBatchNormV3": 9.0, "MatMul": 20.0, "Mul": 5.0}
    base = {"_MklNativeConv2D": 100.0, "FusedBatchNormV3": 10.0, "MatMul": 3.0, "Mul": 5.0, "Relu": 1.0}
    # MatMul +17, Relu -1; the convolution's +10 and batch norm's -1 are the backbone's.
    assert bench_profile.added_work(ops, base) == pytest.approx(16.0)
    assert bench_profile.added_work(ops, base, positive_only=True) == pytest.approx(17.0)
    lines = bench_profile.difference_lines(ops, base, "lcreg", "plain", top=3)
    assert lines[5].startswith("| MatMul | 3.0 | 20.0 | +17.0 |")
    assert lines[6].startswith("| _MklNativeConv2D | 100.0 | 110.0 | +10.0 | yes")
    assert lines[-1].startswith("lcreg adds 16.0 ms a step outside the backbone's ops: 13.4 % of plain's 119 ms (op time ratio without the backbone's noise: 1.134; "
                              "counting only the ops that took longer, 17.0 ms, 1.143)")


@pytest.mark.slow
def test_profile_against_plain_reports_both_steps(tmp_path):
    proc = run_tool(["tools/benchmark.py", "profile", "--backends=tensorflow", "--steps=2", "--batch=8",
                     "--image_size=16", "--threads=1", "--profile_against=plain", "--top=5",
                     f"--out={tmp_path}"])
    tf = json.loads((tmp_path / "profile.json").read_text())["backends"]["tensorflow"]
    plain = tf["against"]["plain"]
    assert sum(tf["ops_ms_per_step"].values()) == pytest.approx(tf["total_ms_per_step"], rel=1e-6)
    # Some op kinds (the latent pool's einsum, at least) run in LCReg's step only.
    assert set(tf["ops_ms_per_step"]) - set(plain["ops_ms_per_step"])
    assert "lcreg adds" in proc.stdout and "outside the backbone's ops" in proc.stdout


def test_benchmark_summary_tables_every_run(tmp_path):
    def write(name, report):
        (tmp_path / name).mkdir()
        (tmp_path / name / "step.json").write_text(json.dumps(report))

    write("reference", {"backends": {}, "torch_reference": {"torch_reference": {"img_per_s": 600.0}}})
    write("tf", {"backends": {"tensorflow": {
        "plain": {"img_per_s": 400.0, "cores_busy": 1.9},
        "lcreg": {"img_per_s": 300.0, "cores_busy": 1.8}}}})
    write("broken", {"backends": {"jax": {"error": "exit 1"}}})
    proc = run_tool(["tools/benchmark.py", "summary", f"--out={tmp_path}"])
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("| run | backend |") and len(lines) == 5
    assert "| reference | PyTorch reference (torch_reference) | 600 |" in proc.stdout
    # 400 / 300 img/s: LCReg takes 1.333 times as long; 300 / 600 of the reference.
    assert "| tf | tensorflow | 400 | 300 | 1.333 | 1.90/1.80 | 0.50 |" in proc.stdout
    assert "| broken | jax | exit 1 |" in proc.stdout


def test_paired_difference_uses_shared_seeds_only():
    base = [{"seed": "seed0", "overall": 80.0}, {"seed": "seed1", "overall": 70.0},
            {"seed": "seed2", "overall": 75.0}]
    runs = [{"seed": "seed0", "overall": 81.0}, {"seed": "seed1", "overall": 71.5},
            {"seed": "seed7", "overall": 99.0}]
    mean, half, n = study_report.paired_difference(runs, base)
    # Differences 1.0 and 1.5: seed 7 has no partner, seed 2 no run.
    assert n == 2 and mean == pytest.approx(1.25)
    assert half == pytest.approx(12.7062 * np.std([1.0, 1.5], ddof=1) / math.sqrt(2))
    assert study_report.paired_difference(runs[2:], base) is None
    table = {"mislas": base, "lcreg": runs}
    text = study_report.markdown(table, baseline="mislas")
    assert "overall - mislas (paired)" in text and "+1.25 ±" in text and "(n=2)" in text


def test_chart_with_a_paired_panel(tmp_path):
    def run(seed, overall):
        return {"seed": seed, "overall": overall, "many": overall + 5, "medium": overall - 5,
                "few": overall}

    table = {"mislas": [run("seed0", 80.0), run("seed1", 82.0)],
             "lcreg": [run("seed0", 81.0), run("seed1", 82.5)]}
    study_report.bar_chart(table, str(tmp_path / "one.png"))
    study_report.bar_chart(table, str(tmp_path / "two.png"), baseline="mislas")
    for runs in table.values():
        for run in runs:
            run["ece"] = 5.0
    study_report.bar_chart(table, str(tmp_path / "three.png"), baseline="mislas")
    from PIL import Image

    one, two, three = (Image.open(tmp_path / f"{n}.png") for n in ("one", "two", "three"))
    # The paired panel (and the ECE panel beside it) sit below the bars.
    assert two.size[1] > one.size[1] * 1.2 and three.size == two.size
    assert np.asarray(three.convert("L")).tobytes() != np.asarray(two.convert("L")).tobytes()


def test_study_rows_for_the_readings_and_table4():
    rows = study_rows.ROWS
    for reading in ("latents", "parts", "latents_explicit", "parts_explicit", "parts_tau0.1"):
        assert f"lcreg_{reading}" in rows
    assert "--latent_aug_samples=parts" in rows["lcreg_parts"]
    assert "--latent_aug_explicit=true" in rows["lcreg_parts_explicit"]
    assert "--temperature=0.1" in rows["lcreg_parts_tau0.1"]
    # Table 4 per the spec: latent category only keeps L_aug at lambda_0 = 0.
    only = rows["t4_only_parts"]
    assert "--isda_lambda0=0" in only and "--latent_recon=false" in only
    assert "--latent_aug=false" not in only and "--latent_aug_samples=parts" in only
    assert "--isda_lambda0=0" not in rows["t4_aug_parts"]
    assert "--fusion=none" in rows["t4_fusion_none_parts"]
    assert study_rows.expand_rows("table4_parts,mislas") == [
        "mislas", "t4_only_parts", "t4_aug_parts", "t4_recon_parts", "lcreg_parts",
        "t4_fusion_none_parts"]
    assert study_rows.expand_rows("screening")[0] == "mislas"


def test_study_reports_loss_shares_after_the_first_tenth(tmp_path):
    folder = tmp_path / "lcreg_parts" / "seed0"
    fake_run(folder, 0.8)
    # 10 epochs: the first is skipped; shares are means of the rest, in %.
    with open(folder / "stage1" / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["share_aug", "share_recon", "latents_in_use"])
        writer.writeheader()
        writer.writerow({"share_aug": 0.9, "share_recon": 0.9, "latents_in_use": 3})
        for epoch in range(9):
            writer.writerow({"share_aug": 0.02 + 0.01 * (epoch % 2), "share_recon": 0.1,
                             "latents_in_use": 7})
    # An older run without share columns: from the loss columns and its alpha, beta.
    old = tmp_path / "lcreg" / "seed0"
    fake_run(old, 0.8)
    metrics = json.loads((old / "metrics.json").read_text())
    metrics["config"] = {"alpha": 0.1, "beta": 0.1, "gamma": 1.0}
    (old / "metrics.json").write_text(json.dumps(metrics))
    with open(old / "stage1" / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["loss_cls", "loss_aug", "loss_recon"])
        writer.writeheader()
        writer.writerow({"loss_cls": 0.8, "loss_aug": 0.1, "loss_recon": 1.0})
    table = study_report.collect(str(tmp_path), ["lcreg_parts", "lcreg"], "cifar10")
    run = table["lcreg_parts"][0]
    assert run["share_aug"] == pytest.approx(100 * (5 * 0.02 + 4 * 0.03) / 9)
    assert run["share_recon"] == pytest.approx(10.0) and run["latents_in_use"] == 7
    assert table["lcreg"][0]["share_aug"] == pytest.approx(100 * 0.01 / 0.91)
    text = study_report.markdown(table)
    assert "share_aug" in text.splitlines()[0] and "share_recon" in text.splitlines()[0]


def test_seeds_needed_gives_eighty_percent_power():
    # G*Power's paired t-test table: effect size d = 0.5, two-sided 5 %, power 0.8 -> 34 pairs.
    assert study_report.seeds_needed(sd=1.0, effect=0.5) == 34
    # Monte Carlo: paired differences N(0.5, sd) at the n it asks for are detected about 80 % of the time.
    rng = np.random.default_rng(0)
    sd = 0.9
    n = study_report.seeds_needed(sd)
    d = rng.normal(0.5, sd, size=(4000, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    power = np.mean(np.abs(t) > study_report.t95(n - 1))
    assert 0.76 < power < 0.85  # binomial standard error 0.0063 at 4,000 trials
    d = rng.normal(0.5, sd, size=(4000, n // 2))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n // 2))
    assert np.mean(np.abs(t) > study_report.t95(n // 2 - 1)) < 0.65  # half the seeds: underpowered
    table = {"mislas": [{"seed": "s0", "overall": 80.0}, {"seed": "s1", "overall": 70.0}],
             "lcreg": [{"seed": "s0", "overall": 81.0}, {"seed": "s1", "overall": 70.5}]}
    text = study_report.markdown(table, baseline="mislas")
    sd_pairs = np.std([1.0, 0.5], ddof=1)
    assert f"| {study_report.seeds_needed(sd_pairs)} |" in text


@pytest.mark.slow
def test_recipe_benchmark_times_the_default_jobs_epochs(tmp_path):
    run_tool(["tools/benchmark.py", "recipe", "--backends=tensorflow", "--recipe_examples=512",
              "--recipe_epochs=2", "--batch=64", "--threads=1", f"--out={tmp_path}"])
    result = json.loads((tmp_path / "recipe.json").read_text())["backends"]["tensorflow"]
    assert "error" not in result, result
    assert len(result["epoch_s"]) == 2 and result["steps"] >= 1 and result["img_per_s"] > 0


def test_study_runs_each_donor_before_the_rows_it_serves():
    assert ablation_study.plan_jobs(["crt", "ce_posthoc_la", "mislas"], [0, 1]) == [
        ("ce", 0), ("crt", 0), ("ce_posthoc_la", 0), ("mislas", 0),
        ("ce", 1), ("crt", 1), ("ce_posthoc_la", 1), ("mislas", 1)]
    # Two runners: crt and ce_posthoc_la must not start until ce of their seed ended,
    # though a runner is free while ce runs.
    import threading
    import time

    log, lock = [], threading.Lock()

    def fake(row, seed, out, extra, cores, threads):
        with lock:
            log.append(("start", row, seed))
        time.sleep(0.3 if row == "ce" else 0.01)
        with lock:
            log.append(("end", row, seed))
        return "ok"

    two = len(os.sched_getaffinity(0)) >= 2
    jobs = ablation_study.plan_jobs(["ce_posthoc_la", "crt", "mislas"], [0])
    ablation_study.run_all(jobs, "unused", [], 2 if two else 1, 1, run=fake)
    ce_end = log.index(("end", "ce", 0))
    for row in ("crt", "ce_posthoc_la"):
        assert log.index(("start", row, 0)) > ce_end, log
    if two:  # the free runner took the job that needs no donor instead of waiting
        assert log.index(("start", "mislas", 0)) < ce_end, log
    assert len(log) == 8


def test_study_prints_how_many_runs_are_left(tmp_path, capsys):
    # A run done in an earlier sitting neither counts as run nor as left.
    (tmp_path / "mislas" / "seed0").mkdir(parents=True)
    (tmp_path / "mislas" / "seed0" / "metrics.json").write_text("{}")

    def fake(row, seed, out, extra, cores, threads):
        done = os.path.exists(os.path.join(out, row, f"seed{seed}", "metrics.json"))
        return "done earlier" if done else "exit 0 in 0.0 min"

    jobs = ablation_study.plan_jobs(["ce", "mislas", "lcreg"], [0, 1])
    ablation_study.run_all(jobs, str(tmp_path), [], 1, 1, run=fake)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "ce seed 0: exit 0 in 0.0 min [1 run, 4 to go, about 0.0 h left]"
    assert lines[1] == "mislas seed 0: done earlier [1 run, 4 to go, about 0.0 h left]"
    assert lines[-1].endswith("[5 run, 0 to go, about 0.0 h left]")


def test_a_reusing_row_without_its_donor_is_skipped(tmp_path):
    result = ablation_study.run_one("crt", 0, str(tmp_path), [])
    assert result == "skipped: ce seed 0 has not finished"
    assert not (tmp_path / "crt").exists()


@pytest.mark.slow
def test_crt_and_posthoc_rows_start_from_the_ce_run(tmp_path):
    out, _ = smoke_study(tmp_path, ["--rows=crt,ce_posthoc_la", "--seeds=2", "--baseline=ce"])
    ce, crt, la = (out / row / "seed2" for row in ("ce", "crt", "ce_posthoc_la"))
    # cRT trained stage two only, on ce's stage one, bit for bit.
    assert "stage 1: finished earlier" in (crt / "log.txt").read_text()
    assert (crt / "stage1" / "model.keras").read_bytes() == (ce / "stage1" / "model.keras").read_bytes()
    crt_metrics = json.loads((crt / "metrics.json").read_text())
    ce_metrics = json.loads((ce / "metrics.json").read_text())
    assert crt_metrics["stages"]["stage1"]["top1"] == ce_metrics["top1"]
    assert crt_metrics["config"]["stage2"] == "crt"
    assert crt_metrics["reused"] == {"row": "ce", "mode": "stage_one",
                                     "seconds": ce_metrics["total_seconds"]}
    # The post-hoc row is ce's model, its logits shifted by -log prior (tau 1).
    la_metrics = json.loads((la / "metrics.json").read_text())
    assert la_metrics["posthoc_tau"] == 1.0 and la_metrics["reused"]["mode"] == "evaluate"
    assert not (la / "stage1").exists()
    model = keras.saving.load_model(str(ce / "model.keras"))
    from lcreg_keras.recipes import datasets
    from lcreg_keras.recipes import fashion_mnist_lt

    loaded = datasets.load(fashion_mnist_lt.get_config().replace(**ce_metrics["config"]))
    logits = np.concatenate([
        np.asarray(model.predict(batch[0] if isinstance(batch, tuple) else batch, verbose=0))
        for batch in loaded.test])
    counts = np.asarray(loaded.train_counts, np.float64)
    adjusted = logits - np.log(counts / counts.sum())
    labels = np.asarray(loaded.test_labels)
    assert la_metrics["top1"] == pytest.approx(np.mean(adjusted.argmax(1) == labels), abs=1e-9)
    assert ce_metrics["top1"] == pytest.approx(np.mean(logits.argmax(1) == labels), abs=1e-9)
    table = (out / "study.md").read_text()
    assert "| crt | 1 |" in table and "| ce_posthoc_la | 1 |" in table
