"""The large-dataset recipes end to end on generated miniature copies (stage 1 and 2)."""

import json
import os

import pytest

from tests.fakes import fake_image_tree
from tests.fakes import fake_inaturalist
from tests.recipes_test import ROOT
from tests.recipes_test import run_recipe

pytestmark = pytest.mark.slow

TRAIN_COUNTS = [14, 9, 6, 4, 3]
TEST_COUNTS = [3, 3, 3, 3, 3]
SMALL = ["--smoke", "--epochs=1", "--batch_size=8", "--stage2_epoch_size=40", "--verbose=2"]


def _check_outputs(out, stdout):
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["stages"]) == {"stage1", "stage2"}
    assert metrics["test_examples"] == sum(TEST_COUNTS)
    assert metrics["train_examples"] == sum(TRAIN_COUNTS) - metrics["skipped_images"]
    for stage in ("stage1", "stage2"):
        events = [f for _, _, files in os.walk(out / stage / "tensorboard") for f in files]
        assert any(f.startswith("events.out.tfevents") for f in events), stage
        assert (out / stage / "model.keras").exists()
    assert "stage 2:" in stdout and "class-balanced" in stdout
    preprocessing = json.loads((out / "preprocessing.json").read_text())
    assert preprocessing["resize"] == 36 and preprocessing["input_shape"] == [32, 32, 3]
    return metrics


def test_imagenet_lt_miniature_with_a_corrupt_file(tmp_path):
    root = tmp_path / "imagenet"
    rel, labels = fake_image_tree(root, TRAIN_COUNTS, split="train")
    corrupt = root / rel[1]
    corrupt.write_bytes(corrupt.read_bytes()[:40])  # truncated JPEG
    with open(root / "ImageNet_LT_train.txt", "w") as f:
        f.writelines(f"{r} {l}\n" for r, l in zip(rel, labels))
    fake_image_tree(root, TEST_COUNTS, split="test", list_name="ImageNet_LT_test.txt")
    out = tmp_path / "run"

    # Without --skip_bad_images the run stops and names the file.
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "lcreg_keras.recipes.imagenet_lt", *SMALL,
         f"--data_dir={root}", f"--model_dir={tmp_path / 'strict'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode != 0
    assert rel[1] in proc.stdout + proc.stderr

    stdout = run_recipe("imagenet_lt", *SMALL, "--skip_bad_images", f"--data_dir={root}", f"--model_dir={out}")
    metrics = _check_outputs(out, stdout)
    assert metrics["skipped_images"] == 1


def test_places_lt_miniature_with_a_path_prefix(tmp_path):
    root = tmp_path / "places"
    fake_image_tree(root, TRAIN_COUNTS, split="train", list_name="Places_LT_train.txt", prefix="data_256/")
    fake_image_tree(root, TEST_COUNTS, split="test", list_name="Places_LT_test.txt", prefix="data_256/")
    out = tmp_path / "run"
    stdout = run_recipe("places_lt", *SMALL, "--path_prefix=data_256", f"--data_dir={root}", f"--model_dir={out}")
    assert _check_outputs(out, stdout)["skipped_images"] == 0


def test_inaturalist_miniature(tmp_path):
    root = tmp_path / "inat"
    fake_inaturalist(root, TRAIN_COUNTS, json_name="train2018.json")
    fake_inaturalist(root, TEST_COUNTS, json_name="val2018.json")
    out = tmp_path / "run"
    stdout = run_recipe("inaturalist2018", *SMALL, f"--data_dir={root}", f"--model_dir={out}")
    _check_outputs(out, stdout)
