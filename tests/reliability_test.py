"""Faults a run meets, what the runner does, and what it prints: docs/reliability.md.

`ROWS` is the table of docs/reliability.md; the tests below make each fault
happen and assert the behaviour and the message of its row (`message(key)`),
and `test_doc_is_current` checks that the doc holds exactly this table.
After changing a row: `python tests/reliability_test.py --write`.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests import fakes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "reliability.md")

# (key, fault, behaviour, what it prints (an excerpt), where it is tested)
ROWS = (
    ("kill_stage", "killed (SIGKILL, preemption) during a stage",
     "the same command resumes the stage at its last finished epoch, with the data order the "
     "run would have had; stage two then trains all its epochs", "",
     "tests/resume_runner_test.py"),
    ("kill_between", "killed between the stages",
     "stage one is not trained again; stage two starts from `stage1/model.keras`, as in a run "
     "never killed", "stage 1: finished earlier, using",
     "tests/resume_runner_test.py, tests/recipes_test.py"),
    ("kill_eval", "killed during an evaluation",
     "the stage's backup stays until its `done.json` is written: the rerun evaluates again "
     "without retraining", "", "tests/resume_runner_test.py"),
    ("kill_write", "killed while a checkpoint, backup, `done.json` or `metrics.json` is "
     "written", "every file is written to a temporary file and renamed: the old file stays "
     "whole; a backup's metadata rename is its only commit point", "",
     "tests/resume_runner_test.py"),
    ("locked", "a second run on a model_dir in use",
     "refuses before reading data, naming the holder", "is in use by another run: PID",
     "tests/reliability_test.py"),
    ("stale_lock", "the lock of a killed run", "taken over (the kernel drops a dead process's "
     "`flock`)", "note: took over the lock of PID", "tests/reliability_test.py"),
    ("other_config", "a rerun with another config on a model_dir with progress",
     "refuses, listing the differences, unless `--overwrite` (which discards the outputs)",
     "holds a run made with another config", "tests/reliability_test.py"),
    ("other_data", "a rerun after a list file changed (or other array data)",
     "refuses before any image is read, unless `--overwrite`", "holds a run made with other data",
     "tests/reliability_test.py"),
    ("other_stage_two", "a rerun with other stage-two settings after stage two started",
     "refuses; `--overwrite` discards stage two only (stage one is kept)",
     "stage one is kept: only stage two's outputs are discarded", "tests/reliability_test.py"),
    ("damaged_jpeg", "a JPEG damaged inside its compressed data, `--check_images=decode` or "
     "`tools/check_dataset.py --decode`",
     "found by the strict decode (libjpeg-turbo via simplejpeg, corrupt-data warnings are "
     "errors): an error naming list file, line and reason, or skipped with "
     "`--skip_bad_images`; the result is cached in `run.json`",
     "damaged JPEG data (Corrupt JPEG data: 49 extraneous bytes before marker 0xd9)",
     "tests/image_files_test.py"),
    ("damaged_jpeg_header_scan", "the same file with the default header scan "
     "(`--check_images=true`)", "passes the scan; TensorFlow decodes it with grey blocks and a "
     "libjpeg warning that names no file (use `decode` to find such files)",
     "Corrupt JPEG data: 49 extraneous bytes before marker 0xd9", "tests/image_files_test.py"),
    ("no_simplejpeg", "`--check_images=decode` without simplejpeg installed",
     "refuses before any data is read, saying how to install it", "pip install 'simplejpeg>=1.7'",
     "tests/reliability_test.py"),
    ("bad_at_scan", "an unreadable file found by the scan", "an error naming list file and "
     "line, or left out and counted with `--skip_bad_images`", "ImageNet_LT_train.txt:6: ",
     "tests/reliability_test.py"),
    ("read_error", "a file failing while it is read (`--check_images=false`, or damage the "
     "header scan does not see)", "stops with an error naming list file, line and the fix",
     "cannot be read or decoded (missing, unreadable, truncated or not an image)",
     "tests/reliability_test.py"),
    ("bad_while_reading", "the same with `--skip_bad_images`",
     "skipped, in the training and the test split, and counted once per file in "
     "`metrics.json` (`images`, `skipped_images`, `train_examples`, `test_examples`) and the "
     "summary", "top-1 over 14 of 15 test images (0 skipped at the scan, 1 while reading)",
     "tests/reliability_test.py"),
    ("label_typo", "a label such as `1_0`, `+3` or `٣` (Python's `int` takes them)",
     "an error naming file and line", "is not a non-negative integer written with the digits 0-9",
     "tests/image_lists_test.py"),
    ("not_utf8", "a list file in Latin-1", "an error naming file and line, UTF-8 expected",
     "not UTF-8 text", "tests/image_lists_test.py"),
    ("bom", "a list file starting with a UTF-8 byte-order mark", "the mark is dropped", "",
     "tests/image_lists_test.py"),
    ("bad_flag", "`--epochs=0`, `--imbalance_factor=-5`, an unknown `--fusion`, ...",
     "refuses before any data is read or file written",
     "--epochs=0 is not valid: expected an integer >= 1", "tests/reliability_test.py"),
    ("no_data_dir", "`--data_dir` that does not exist", "refuses before any data is read",
     "is not a folder (no such path)", "tests/reliability_test.py"),
    ("data_dir_without_data", "`--data_dir` that lacks the dataset",
     "an error saying what is missing; no fallback to another copy",
     "(missing train-images-idx3-ubyte.gz", "tests/datasets_test.py"),
    ("user_error", "any user error (flags, data, model_dir)",
     "the message and the fix on stderr, exit status 2, no traceback (`--verbose=1` or `2` "
     "shows it)", "error: ", "tests/reliability_test.py"),
    ("exif", "a photo with an EXIF orientation", "ignored: the image is used as stored, as "
     "torchvision's Pillow loader and MiSLAS do", "", "lcreg_keras/data/transforms.py"),
)


def message(key):
    return {row[0]: row[3] for row in ROWS}[key]


def table():
    lines = ["| fault | behaviour | prints (excerpt) | tested in |", "|---|---|---|---|"]
    for _, fault, behaviour, printed, where in ROWS:
        shown = f"`{printed}`" if printed else ""
        lines.append(f"| {fault} | {behaviour} | {shown} | {where} |")
    return "\n".join(lines)


BEGIN = "<!-- table: generated by tests/reliability_test.py --write -->"
END = "<!-- end of table -->"


def _doc_with_table(text):
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + table() + "\n" + text[end:]


def test_doc_is_current():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    assert _doc_with_table(text) == text, "run: python tests/reliability_test.py --write"


# ---------------------------------------------------------------------------
# The faults, in this process where they stop before training.


def _fashion_config(tmp_path, **changes):
    from lcreg_keras.recipes import fashion_mnist_lt

    data_dir = tmp_path / "fashion"
    if not data_dir.exists():
        fakes.fake_fashion_mnist(str(data_dir), n_train=600, n_test=40)
    values = dict(data_dir=str(data_dir), model_dir=str(tmp_path / "run"), imbalance_factor=10,
                  batch_size=16, max_train_examples=200, epochs=1)
    values.update(changes)
    return fashion_mnist_lt.get_config().replace(**values)


@pytest.mark.parametrize("changes, expected", [
    (dict(epochs=0), message("bad_flag")),
    (dict(imbalance_factor=-5.0), "--imbalance_factor=-5.0 is not valid: expected a number >= 1"),
    (dict(fusion="sum"), "--fusion='sum' is not valid: one of residual, replace, none"),
    (dict(stage="2"), "--stage=2 needs a finished stage one"),
    (dict(check_images="maybe"), "--check_images must be true"),
    (dict(eval_rule="cifar100"), "its ranges cover 100 classes, fashion_mnist_lt has 10"),
    (dict(backbone_weights="/no/weights.h5"), "none, imagenet or an existing weights file"),
    (dict(data_dir="/nonexistent"), message("no_data_dir")),
])
def test_bad_flags_refused_before_reading_or_writing(tmp_path, changes, expected):
    from lcreg_keras.errors import UserError
    from lcreg_keras.recipes import runner

    config = _fashion_config(tmp_path, **changes)
    with pytest.raises(UserError) as error:
        runner.run(config)
    assert expected in str(error.value)
    assert not os.path.exists(config.model_dir)  # nothing written


def test_decode_without_simplejpeg_refused_first(tmp_path, monkeypatch):
    from lcreg_keras.data import image_files
    from lcreg_keras.errors import UserError
    from lcreg_keras.recipes import validate

    monkeypatch.setattr(image_files, "strict_decoder_missing", lambda: image_files.STRICT_DECODER_HINT)
    with pytest.raises(UserError, match=message("no_simplejpeg").replace("(", r"\(").replace(
            ")", r"\)").replace(".", r"\.")):
        validate.check_config(_fashion_config(tmp_path, check_images="decode"))


def _hold_lock(folder):
    """A child process holding the lock of `folder`; returns it once it holds it."""
    code = (f"import sys, time; sys.path.insert(0, {ROOT!r})\n"
            "from lcreg_keras.serving.run_folder import RunLock\n"
            f"RunLock({str(folder)!r}).acquire(); print('held', flush=True); time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_refused_and_stale_lock_taken_over(tmp_path):
    import socket

    from lcreg_keras.recipes import runner
    from lcreg_keras.serving.run_folder import RunLock
    from lcreg_keras.serving.run_folder import RunLockedError

    config = _fashion_config(tmp_path)
    holder = _hold_lock(config.model_dir)
    try:
        with pytest.raises(RunLockedError) as error:
            runner.run(config)
        text = str(error.value)
        assert message("locked") in text
        assert f"PID {holder.pid} on host {socket.gethostname()}" in text
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = RunLock(config.model_dir).acquire()  # the dead holder's lock is taken over
    try:
        assert lock.took_over["pid"] == holder.pid
        assert runner._lock_note(lock.took_over).startswith(message("stale_lock"))
    finally:
        lock.release()


def _fake_progress(config):
    """A model_dir as a run of `config` leaves it after both stages (no training here)."""
    from lcreg_keras.recipes import datasets
    from lcreg_keras.recipes import runner

    guard = runner._ManifestGuard(config, overwrite=False)
    guard.check_config()
    datasets.load(config, hooks=guard)  # records the data's fingerprint
    for stage in ("stage1", "stage2"):
        os.makedirs(os.path.join(config.model_dir, stage), exist_ok=True)
        with open(os.path.join(config.model_dir, stage, "done.json"), "w") as f:
            json.dump({"top1": 0.5}, f)
    return guard


def test_rerun_with_other_config_or_stage_two_settings(tmp_path):
    from lcreg_keras.recipes import runner
    from lcreg_keras.serving.run_folder import RunMismatchError

    config = _fashion_config(tmp_path)
    _fake_progress(config)
    with pytest.raises(RunMismatchError) as error:
        runner.run(config.replace(lr=0.05))
    text = str(error.value)
    assert message("other_config") in text and "lr: 0.1 then, 0.05 now" in text
    assert "--overwrite" in text
    with pytest.raises(RunMismatchError, match=message("other_stage_two")):
        runner.run(config.replace(stage2_lr_factor=0.3))
    # --overwrite with only stage-two settings changed keeps stage one.
    guard = runner._ManifestGuard(config.replace(stage2_lr_factor=0.3), overwrite=True)
    guard.check_config()
    from lcreg_keras.recipes import datasets

    datasets.load(config, hooks=guard)
    assert os.path.exists(os.path.join(config.model_dir, "stage1", "done.json"))
    assert not os.path.exists(os.path.join(config.model_dir, "stage2"))


def test_rerun_after_the_list_changed_is_refused_before_the_scan(tmp_path):
    from lcreg_keras.recipes import runner
    from lcreg_keras.recipes import imagenet_lt
    from lcreg_keras.serving.run_folder import RunMismatchError

    root = tmp_path / "imagenet"
    rel, labels = fakes.fake_image_tree(str(root), [6, 3, 2], "train", "ImageNet_LT_train.txt")
    fakes.fake_image_tree(str(root), [1, 1, 1], "val", "ImageNet_LT_test.txt")
    config = runner.smoke(imagenet_lt.get_config()).replace(
        data_dir=str(root), model_dir=str(tmp_path / "run"), batch_size=4)
    _fake_progress(config)
    fakes.write_list(str(root / "ImageNet_LT_train.txt"), rel[:-1], labels[:-1])
    with pytest.raises(RunMismatchError) as error:
        runner.run(config)
    assert message("other_data") in str(error.value)
    assert "train.counts" in str(error.value)


# ---------------------------------------------------------------------------
# Through the command line (subprocesses).


def _recipe(module, *args, env=None):
    cmd = [sys.executable, "-m", f"lcreg_keras.recipes.{module}", *args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_user_error_prints_the_message_not_a_traceback(tmp_path):
    proc = _recipe("fashion_mnist_lt", "--epochs=0", f"--model_dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"{message('user_error')}{message('bad_flag')}."
    assert "Traceback" not in proc.stderr
    proc = _recipe("fashion_mnist_lt", "--epochs=0", "--verbose=1",
                   f"--model_dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and "Traceback" in proc.stderr
    proc = _recipe("fashion_mnist_lt", "--data_dir=/nonexistent", f"--model_dir={tmp_path / 'r'}")
    assert proc.returncode == 2 and message("no_data_dir") in proc.stderr


@pytest.mark.slow
def test_bad_images_at_scan_and_while_reading_counted_per_split(tmp_path):
    """Issue 11 case 3: read-time skips were not counted, a bad test image crashed the run."""
    root = tmp_path / "imagenet"
    train_counts, test_counts = [14, 9, 6, 4, 3], [3, 3, 3, 3, 3]
    rel, labels = fakes.fake_image_tree(str(root), train_counts, "train")
    (root / rel[5]).write_bytes((root / rel[5]).read_bytes()[:40])  # truncated
    fakes.write_list(str(root / "ImageNet_LT_train.txt"), rel, labels)
    test_rel, _ = fakes.fake_image_tree(str(root), test_counts, "test", "ImageNet_LT_test.txt")
    (root / test_rel[4]).write_bytes((root / test_rel[4]).read_bytes()[:40])
    small = ["--smoke", "--epochs=1", "--stage=1", "--batch_size=8", "--verbose=0",
             f"--data_dir={root}"]
    # The scan finds both, names list and line; --skip_bad_images leaves them out.
    proc = _recipe("imagenet_lt", *small, f"--model_dir={tmp_path / 'strict'}")
    assert proc.returncode == 2 and message("bad_at_scan") in proc.stderr
    assert "Traceback" not in proc.stderr
    # Without the scan, a failing read names the file, its list line and the fix (the
    # test image is read first: the run draws a batch of test images for TensorBoard).
    proc = _recipe("imagenet_lt", *small, "--check_images=false",
                   f"--model_dir={tmp_path / 'noscan'}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert (f"error: {root / 'ImageNet_LT_test.txt'}:5: {root / test_rel[4]}: "
            f"{message('read_error')}") in proc.stderr
    assert "--skip_bad_images" in proc.stderr and "Traceback" not in proc.stderr
    # Skipped while reading, in both splits, and counted once per file.
    out = tmp_path / "skip"
    proc = _recipe("imagenet_lt", *small, "--check_images=false", "--skip_bad_images",
                   f"--model_dir={out}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert message("bad_while_reading") in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"]["train"]["listed"] == sum(train_counts)
    assert metrics["images"]["train"]["skipped_while_reading"] == 1
    assert metrics["train_examples"] == sum(train_counts) - 1
    assert metrics["test_examples"] == sum(test_counts) - 1
    assert metrics["skipped_images"] == 2
    assert metrics["images"]["test"]["skipped_files"] == [
        f"{root / 'ImageNet_LT_test.txt'}:5: {root / test_rel[4]}"]
    assert metrics["stages"]["stage1"]["test_images"]["evaluated"] == 14
    # The evaluation tool pairs its predictions with the images it could read too.
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "evaluate.py"),
         f"--model={out / 'model.keras'}", "--recipe=imagenet_lt", "--smoke", "--batch_size=8",
         f"--data_dir={root}", "--check_images=false", "--skip_bad_images", "--verbose=0",
         f"--out={tmp_path / 'eval'}"],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "top-1 over 14 of 15 test images" in proc.stdout
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["test_images"] == {"listed": 15, "evaluated": 14}
    assert report["top1"] == pytest.approx(metrics["top1"], abs=1e-9)


if __name__ == "__main__":
    if "--write" in sys.argv:
        with open(DOC, encoding="utf-8") as f:
            content = _doc_with_table(f.read())
        with open(DOC, "w", encoding="utf-8") as f:
            f.write(content)
        print(f"wrote {DOC}")
    else:
        print(table())
