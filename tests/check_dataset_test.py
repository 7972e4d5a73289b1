"""tools/check_dataset.py: class histograms and the scan of the listed files."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import fakes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------
# tools/check_dataset.py


def _run_tool(*args):
    cmd = [sys.executable, os.path.join(ROOT, "tools", "check_dataset.py"), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_check_dataset_tool(tmp_path, tree):
    plot = str(tmp_path / "counts.png")
    proc = _run_tool("--dataset=imagenet_lt", f"--data_dir={tree['root']}", f"--plot={plot}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 1000 classes (5 with images) are grouped into 40 rows of 25 ranks.
    assert "1000 classes (5 with images)" in proc.stdout
    assert "ranks 0-24       |     12 .. 0      | " + "#" * 50 in proc.stdout
    assert "995 classes have no training image" in proc.stdout
    assert "count rule (many > 100, few < 20)" in proc.stdout
    assert "all 34 listed files look readable" in proc.stdout
    assert os.path.getsize(plot) > 1000

    root = str(tmp_path / "broken")
    rel, labels = fakes.fake_image_tree(root, [3, 2], "train")
    fakes.write_list(os.path.join(root, "lst.txt"), rel + ["gone.jpg"], np.append(labels, 0))
    proc = _run_tool("--dataset=places_lt", f"--data_dir={root}", "--train_list=lst.txt",
                     "--split=train")
    assert proc.returncode == 1
    assert "gone.jpg: missing" in proc.stdout and "1 of 6 listed files" in proc.stdout


def _check_dataset_module():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import check_dataset
    finally:
        sys.path.pop(0)
    return check_dataset


def test_check_dataset_decode_finds_damaged_jpeg(tmp_path, odd_files, capsys):
    """Issue 11: `--decode` said 'all 86 listed files look readable' for entropy damage."""
    _, image = odd_files
    root = str(tmp_path)
    rel, labels = fakes.fake_image_tree(root, [3, 2], "train")
    damaged = fakes.damaged_jpegs(tf.io.encode_jpeg(image, quality=95).numpy())["extraneous"]
    with open(os.path.join(root, "damaged.jpg"), "wb") as f:
        f.write(damaged)
    fakes.write_list(os.path.join(root, "lst.txt"), rel + ["damaged.jpg"], np.append(labels, 0))
    args = ["--dataset=places_lt", f"--data_dir={root}", "--train_list=lst.txt", "--split=train"]
    tool = _check_dataset_module()
    assert tool.main(args) == 0
    assert "all 6 listed files look readable (header scan" in capsys.readouterr().out
    assert tool.main(args + ["--decode"]) == 1
    out = capsys.readouterr().out
    assert "1 of 6 listed files cannot be read" in out
    assert (f"lst.txt:6: {os.path.join(root, 'damaged.jpg')}: damaged JPEG data (Corrupt JPEG "
            "data: 49 extraneous bytes before marker 0xd9)") in out


def test_histogram_lines_groups_many_classes():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import check_dataset
    finally:
        sys.path.pop(0)
    lines = check_dataset.histogram_lines(np.arange(1, 101)[::-1], max_rows=10, width=10)
    assert len(lines) == 10
    assert lines[0].startswith("ranks 0-9") and lines[0].endswith("#" * 10)
    assert check_dataset.histogram_lines([4, 1, 2], width=4)[1].startswith("class 2")
