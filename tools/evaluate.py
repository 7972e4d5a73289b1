"""Evaluate a saved model on its recipe's test set (thin wrapper).

    python tools/evaluate.py --model=runs/x/model.keras --recipe=fashion_mnist_lt \
        [--data_dir=...] [--out=runs/x/eval] [--smoke] [--max_test_examples=N]

Writes report.json, per_class.csv, reliability.png and
accuracy_by_frequency.png; see `lcreg_keras/recipes/evaluate.py` for what each holds.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lcreg_keras.recipes.evaluate import main  # noqa: E402

if __name__ == "__main__":
    main()
