"""Serving a trained run: its folder, loading it, exporting it.

- `run_folder`: what a run keeps in its `model_dir` (atomic writes, the lock,
  the manifest `run.json`, the test-only kill points);
- `trained_run`: `load_model`, `run_file` (a file of the run a model belongs
  to), `read_preprocessing`;
- `export`: a TensorFlow SavedModel that takes raw images
  (`export_serving`; `python tools/export.py`).
"""
