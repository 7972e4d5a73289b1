"""Checks a dataset before a long run: class histogram, splits, readable files.

    python tools/check_dataset.py --dataset=imagenet_lt --data_dir=/data/imagenet
    python tools/check_dataset.py --dataset=places_lt --data_dir=/data/places365 \\
        --path_prefix=data_256 --plot=places_counts.png
    python tools/check_dataset.py --dataset=inaturalist2018 --data_dir=/data/inat \\
        --decode          # also decode every image strictly (finds damaged data)
    python tools/check_dataset.py --dataset=cifar100_lt --imbalance_factor=50

For the list datasets (imagenet_lt, places_lt, inaturalist2018) it reads the
training and test lists as the recipes do (`--train_list`, `--test_list`,
`--path_prefix`, default list names looked up in `--data_dir`), prints the
training class-count histogram as text bars (and a PNG with `--plot`), the
many / medium / few class counts, and checks that every listed file exists
and has a readable image header (`check_images`: JPEG frame header and
end-of-image marker, PNG IHDR / IEND, magic bytes). With `--decode` it also
decodes every image strictly (`check_images(decode=True)`: libjpeg-turbo
through simplejpeg, where libjpeg's corrupt-data warnings are errors), which
finds JPEGs damaged inside their compressed data, as `--check_images=decode`
does before a run. It exits with status 1, listing the first 20 bad files
(with their list file and line) and their count, when any file is bad.

For the array datasets (fashion_mnist_lt, cifar10_lt, cifar100_lt) it loads
the data as the recipe would and prints the long-tailed histogram.
"""

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

BAR_WIDTH = 50
MAX_ROWS = 40


def histogram_lines(counts, max_rows=MAX_ROWS, width=BAR_WIDTH):
    """Text bars of class counts, largest class first.

    One row per class when there are at most `max_rows` classes, else the
    classes (ranked by count) are grouped into `max_rows` rows of equal
    size, each showing its largest and smallest count; the bar follows the
    largest.

    Args:
        counts: 1-D array of per-class counts.
        max_rows: most rows to print.
        width: characters of the longest bar.

    Returns:
        A list of strings.

    Example:
        >>> histogram_lines([4, 1, 2], width=4)[0]
        'class 0     |      4 | ####'
    """
    counts = np.asarray(counts, np.int64)
    order = np.argsort(-counts, kind="stable")
    top = max(int(counts.max()), 1)

    def bar(value):
        length = int(round(width * value / top))
        return "#" * length if length or value == 0 else "."

    lines = []
    if len(counts) <= max_rows:
        for c in order:
            lines.append(f"class {int(c):<5} | {int(counts[c]):>6} | {bar(counts[c])}")
        return lines
    for group in np.array_split(np.arange(len(counts)), max_rows):
        ranked = counts[order[group]]
        label = f"ranks {group[0]}-{group[-1]}"
        lines.append(
            f"{label:<16} | {int(ranked.max()):>6} .. {int(ranked.min()):<6} | "
            f"{bar(ranked.max())}"
        )
    return lines


def split_lines(counts, dataset):
    """Many / medium / few class counts under the count and index rules."""
    from lcreg_keras import evaluation

    counts = np.asarray(counts)
    lines = []
    splits = evaluation.split_classes(counts, rule="count")
    parts = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
    lines.append(f"count rule (many > 100, few < 20): {parts} classes")
    preset = {"cifar10_lt": "cifar10", "cifar100_lt": "cifar100"}.get(dataset, dataset)
    ranges = evaluation.INDEX_PRESETS.get(preset)
    if ranges is not None and ranges[-1][1] == len(counts):
        splits = evaluation.split_classes(counts, rule=preset)
        parts = ", ".join(
            f"{k} {len(v)} ({int(counts[v].max()) if len(v) else 0}.."
            f"{int(counts[v].min()) if len(v) else 0} images)"
            for k, v in splits.items()
        )
        lines.append(f"index rule ({preset}, MiSLAS): {parts}")
    return lines


def save_plot(counts, path, title):
    """Sorted class counts as a bar chart (log scale) in a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.sort(np.asarray(counts))[::-1]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(np.arange(len(counts)), np.maximum(counts, 0.5), width=1.0)
    ax.set_yscale("log")
    ax.set_xlabel("class rank (largest first)")
    ax.set_ylabel("training images")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


class _Counter:
    """A one-line progress counter on stderr."""

    def __init__(self, label):
        self.label = label
        self.start = time.time()
        self.interactive = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, done, total):
        now = time.time()
        if done < total and now - self.last < 1.0:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6)
        text = f"{self.label}: {done:,} / {total:,} files ({rate:,.0f} per s)"
        end = "\n" if done >= total else ""
        if self.interactive:
            sys.stderr.write("\r" + text + end)
        elif done >= total:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", required=True,
                        help="imagenet_lt | places_lt | inaturalist2018 | cifar10_lt | "
                             "cifar100_lt | fashion_mnist_lt")
    parser.add_argument("--data_dir", default=None, help="image root / data folder")
    parser.add_argument("--train_list", default=None)
    parser.add_argument("--val_list", default=None)
    parser.add_argument("--test_list", default=None)
    parser.add_argument("--path_prefix", default="")
    parser.add_argument("--imbalance_factor", type=float, default=100.0,
                        help="array datasets: the long-tailed profile")
    parser.add_argument("--split", choices=("train", "test", "both"), default="both",
                        help="which lists' files to check")
    parser.add_argument("--plot", default=None, help="write the histogram to this PNG")
    parser.add_argument("--no_files", action="store_true",
                        help="skip the file check (histogram only)")
    parser.add_argument("--decode", action="store_true",
                        help="also decode every image strictly (finds damaged JPEG data)")
    parser.add_argument("--num_threads", type=int, default=None)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from lcreg_keras.recipes import datasets
    from lcreg_keras.recipes.config import Config

    known = sorted(datasets.LOADERS)
    if args.dataset not in known:
        print(f"Unknown --dataset {args.dataset!r}; known: {known}", file=sys.stderr)
        return 2
    config = Config(
        dataset=args.dataset, data_dir=args.data_dir, train_list=args.train_list,
        val_list=args.val_list, test_list=args.test_list, path_prefix=args.path_prefix,
        imbalance_factor=args.imbalance_factor, batch_size=1,
    )

    if args.dataset not in datasets.LIST_DATASETS:
        data = datasets.load(config)
        print(data.describe())
        counts = data.train_counts
        test = None
    else:
        from lcreg_keras.data import image_lists

        if not args.data_dir:
            print("--data_dir is needed: the image root and where the lists are.",
                  file=sys.stderr)
            return 2
        num_classes, lists_name, _ = datasets.LIST_DATASETS[args.dataset]
        names = getattr(image_lists, lists_name)
        listed = {}
        for split in ("train", "test"):
            try:
                list_path = datasets._find_list(config, names, split)
            except FileNotFoundError as error:
                if split == "train":
                    print(error, file=sys.stderr)
                    return 2
                print(f"note: {error}", file=sys.stderr)
                continue
            paths, labels, lines = image_lists.read_any_list(
                list_path, args.data_dir, args.path_prefix, num_classes, return_lines=True
            )
            listed[split] = (list_path, paths, labels, lines)
            print(f"{split}: {list_path}: {len(paths):,} images")
        counts = np.bincount(listed["train"][2], minlength=num_classes)
        test = listed.get("test")
        if test is not None:
            test_counts = np.bincount(test[2], minlength=num_classes)
            print(f"test: {int(test_counts.min())} to {int(test_counts.max())} images per class")

    present = counts[counts > 0]
    print(
        f"\n{args.dataset}: {int(counts.sum()):,} training images, {len(counts)} classes "
        f"({len(present)} with images), {int(counts.max())} to {int(counts.min())} per "
        f"class, imbalance factor {counts.max() / max(counts.min(), 1):.1f}"
    )
    if len(present) < len(counts):
        print(
            f"warning: {len(counts) - len(present)} classes have no training image "
            "(a partial or wrong list?)"
        )
    for line in histogram_lines(counts):
        print(line)
    for line in split_lines(counts, args.dataset):
        print(line)
    if args.plot:
        save_plot(counts, args.plot, f"{args.dataset}: training images per class")
        print(f"plot: {args.plot}")

    if args.dataset not in datasets.LIST_DATASETS or args.no_files:
        return 0

    from lcreg_keras.data.image_files import check_images
    from lcreg_keras.data.image_files import strict_decoder_missing

    if args.decode and strict_decoder_missing():
        print(strict_decoder_missing(), file=sys.stderr)
        return 2
    splits = ["train", "test"] if args.split == "both" else [args.split]
    bad = []
    checked = 0
    for split in splits:
        if split not in listed:
            continue
        list_path, paths, _, lines = listed[split]
        what = "decoding" if args.decode else "checking"
        check = check_images(paths, num_threads=args.num_threads, decode=args.decode,
                             progress=_Counter(f"{what} {split} files"))
        checked += check.num_files
        bad += [(f"{datasets._location(list_path, lines[i])}: {path}", reason)
                for i, path, reason in check.bad]
    if bad:
        print(f"\n{len(bad):,} of {checked:,} listed files cannot be read:")
        for path, reason in bad[:20]:
            print(f"  {path}: {reason}")
        if len(bad) > 20:
            print(f"  ... and {len(bad) - 20:,} more")
        print("Fix them, or train with --skip_bad_images to leave them out.")
        return 1
    if args.decode:
        print(f"\nall {checked:,} listed files decode cleanly (strict decode)")
    else:
        print(f"\nall {checked:,} listed files look readable (header scan; --decode "
              "also finds damage inside the image data)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
