"""Evaluation pictures: latent categories per image (the paper's Fig. 4) and plots.

Latent categories. For an image, `S_hat = softmax(S / tau)` (Eq. 2) weighs
the M latent categories at every position of the last feature map.
`latent_weights` returns those maps and their mean over positions (a
histogram over the M latents per image); `plot_latent_histograms` draws, for
each image, the image, the histogram with its top latents highlighted and
where in the image those top latents are (their maps upsampled over it), as
in Fig. 4 of the paper. `latent_usage_image` renders an images x latents heat
map and the share of positions each latent wins, as an RGB array;
`lcreg_keras.training.latent_images.LatentUsageImages` writes it to
TensorBoard during `fit` on any backend.

Evaluation. `plot_reliability` (a reliability diagram) and
`plot_accuracy_by_frequency` (per-class accuracy against training count) draw
what `lcreg_keras.evaluation.evaluation_report` computes.

Everything draws on matplotlib `Figure` objects with the Agg canvas, never
`pyplot`: it works headless and leaves the user's matplotlib backend alone.
matplotlib is a core dependency: the default job draws a picture every epoch.
"""

import os
import re

import keras
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lcreg_keras.data.transforms import preprocess

HIGHLIGHT = ("#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _new_figure(figsize):
    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi=100):
    if path is not None:
        folder = os.path.dirname(os.path.abspath(str(path)))
        os.makedirs(folder, exist_ok=True)
        fig.savefig(str(path), dpi=dpi, bbox_inches="tight")
    return fig


def figure_to_array(fig):
    """Renders a matplotlib figure to an RGB uint8 array `(H, W, 3)`."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


# ---------------------------------------------------------------------------
# Latent categories
# ---------------------------------------------------------------------------


def model_inputs(images, preprocessing):
    """Model inputs from `images`: raw uint8 through `preprocessing`, or as given.

    Args:
        images: `(N, H, W, C)` (or `(N, H, W)`) raw uint8 images with
            `preprocessing` (the run's preprocessing.json dict), or float
            model inputs without it.
        preprocessing: None, or a dict for `data.transforms.preprocess`.

    Returns:
        float32 model inputs.
    """
    images = np.asarray(images)
    if preprocessing is not None:
        if images.ndim == 3:
            images = images[..., None]
        return np.asarray(preprocess(images.astype(np.uint8), preprocessing), np.float32)
    if images.dtype == np.uint8:
        raise ValueError(
            "`images` are uint8: pass `preprocessing` (the run's preprocessing.json "
            "dict) to normalise them, or pass model inputs (float, normalised)."
        )
    return images.astype(np.float32)


def latent_weights(model, images, preprocessing=None, batch_size=64):
    """The normalised latent weights `S_hat` (Eq. 2) of each image.

    Runs the backbone, the latent pool and the reconstruction of an
    `LCRegModel` in inference mode.

    Args:
        model: an `LCRegModel` with its latent pool (`latent=True`).
        images: model inputs `(N, H, W, C)` (float, normalised as in
            training), or raw uint8 images with `preprocessing`.
        preprocessing: optional dict of the run's `preprocessing.json`; when
            given, `images` are raw uint8 and are resized and normalised as
            `lcreg_keras.data.transforms.preprocess` does.
        batch_size: images per forward pass.

    Returns:
        `(hist, maps)`: `hist` `(N, M)`, the mean of `S_hat` over the
        positions of the last feature map (each row sums to 1: a histogram
        over the M latents), and `maps` `(N, h, w, M)`, `S_hat` itself (its
        spatial maps). Both float32 NumPy arrays.

    Example:
        >>> hist, maps = latent_weights(model, x_test[:6])  # doctest: +SKIP
        >>> hist.shape, maps.shape  # doctest: +SKIP
        ((6, 40), (6, 8, 8, 40))
    """
    if not getattr(model, "latent", False) or getattr(model, "latent_pool", None) is None:
        raise ValueError(
            "`model` has no latent pool (an LCRegModel built with latent=True is "
            "needed to draw latent categories)."
        )
    x = model_inputs(images, preprocessing)
    if x.ndim != 4:
        raise ValueError(f"`images` must be a batch (N, H, W, C). Received shape {x.shape}.")
    maps = []
    for start in range(0, len(x), batch_size):
        batch = keras.ops.convert_to_tensor(x[start : start + batch_size])
        features = model.backbone(batch, training=False)
        _, similarity, encoded = model.latent_pool(features)
        weights = model.reconstruction(similarity, encoded)["weights"]
        maps.append(np.asarray(keras.ops.convert_to_numpy(weights), np.float32))
    maps = np.concatenate(maps, axis=0)
    return maps.mean(axis=(1, 2)), maps


def _display_image(image):
    """An image ready for `imshow`: `(H, W)` gray or `(H, W, 3)` in [0, 1]."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    image = image.astype(np.float32)
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > 1:
        image = (image - low) / max(high - low, 1e-8)
    return image


def plot_latent_histograms(
    images, hist, maps, top_k=3, path=None, titles=None, cmap="jet", alpha=0.5
):
    """The paper's Fig. 4: per image, its latent histogram and top latents' maps.

    One row per image: the image; a bar chart of `hist` over the M latents
    (top-k bars coloured, the rest grey, a dashed line at the uniform 1/M);
    then, for each of the top-k latents, its spatial map `S_hat[..., m]`
    upsampled (bilinear) over the image as a heat map.

    Args:
        images: `(N, H, W)`, `(N, H, W, 1)` or `(N, H, W, 3)` images to show:
            uint8, or floats (shown as they are in [0, 1], else rescaled per
            image).
        hist: `(N, M)` histograms from `latent_weights`.
        maps: `(N, h, w, M)` spatial maps from `latent_weights`.
        top_k: how many of the largest latents to highlight and map.
        path: where to save a PNG (None: do not save).
        titles: optional `N` strings written above each image.
        cmap: matplotlib colormap of the heat maps.
        alpha: opacity of the heat maps over the image.

    Returns:
        The matplotlib `Figure`.

    Example:
        >>> hist, maps = latent_weights(model, x)  # doctest: +SKIP
        >>> plot_latent_histograms(raw_images, hist, maps, top_k=3,
        ...                        path="latent_maps.png")  # doctest: +SKIP
    """
    hist = np.asarray(hist, np.float32)
    maps = np.asarray(maps, np.float32)
    images = np.asarray(images)
    if hist.ndim != 2 or maps.ndim != 4:
        raise ValueError(
            f"`hist` must be (N, M) and `maps` (N, h, w, M). Received {hist.shape} "
            f"and {maps.shape}."
        )
    n, m = hist.shape
    if len(images) != n or maps.shape[0] != n or maps.shape[-1] != m:
        raise ValueError(
            f"{len(images)} images, {n} histograms and maps {maps.shape} do not match."
        )
    if not 1 <= top_k <= m:
        raise ValueError(f"`top_k` must be in [1, M={m}]. Received: {top_k}")
    if titles is not None and len(titles) != n:
        raise ValueError(f"`titles` has {len(titles)} entries for {n} images.")
    fig = _new_figure((2.0 * (1 + top_k) + 4.5, 2.1 * n + 0.4))
    grid = fig.add_gridspec(n, 2 + top_k, width_ratios=[1, 2.6] + [1] * top_k,
                            wspace=0.4, hspace=0.45)
    for row in range(n):
        image = _display_image(images[row])
        height, width = image.shape[:2]
        gray = dict(cmap="gray", vmin=0, vmax=1) if image.ndim == 2 else {}
        order = np.argsort(-hist[row], kind="stable")[:top_k]

        ax = fig.add_subplot(grid[row, 0])
        ax.imshow(image, **gray)
        ax.set_xticks([]), ax.set_yticks([])
        if titles is not None:
            ax.set_title(str(titles[row]), fontsize=8)

        ax = fig.add_subplot(grid[row, 1])
        colors = ["#b0b0b0"] * m
        for rank, latent in enumerate(order):
            colors[latent] = HIGHLIGHT[rank % len(HIGHLIGHT)]
        ax.bar(np.arange(m), hist[row], color=colors, width=0.85)
        ax.axhline(1.0 / m, color="black", linestyle="--", linewidth=0.7)
        span = hist[row].max() - hist[row].min()
        low = max(0.0, hist[row].min() - 0.5 * span)
        ax.set_ylim(low, hist[row].max() + 0.15 * span + 1e-9)
        ax.set_xlim(-0.7, m - 0.3)
        ax.tick_params(labelsize=6)
        ax.set_ylabel("mean $\\hat{S}$", fontsize=7)
        if row == n - 1:
            ax.set_xlabel("latent category", fontsize=7)
        if row == 0:
            ax.set_title(f"latent histogram (M={m}; dashed: uniform 1/M)", fontsize=8)

        for rank, latent in enumerate(order):
            ax = fig.add_subplot(grid[row, 2 + rank])
            ax.imshow(image, extent=(0, width, height, 0), **gray)
            heat = maps[row, :, :, latent]
            ax.imshow(heat, extent=(0, width, height, 0), cmap=cmap, alpha=alpha,
                      interpolation="bilinear")
            ax.set_xlim(0, width), ax.set_ylim(height, 0)
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(HIGHLIGHT[rank % len(HIGHLIGHT)])
                spine.set_linewidth(2)
            ax.set_title(f"latent {latent} ({hist[row, latent]:.3f})", fontsize=7,
                         color=HIGHLIGHT[rank % len(HIGHLIGHT)])
    return _save(fig, path)


def latent_usage_figure(hist, maps, title=None):
    """Images x latents heat map of `hist` above the share of positions won.

    Args:
        hist: `(N, M)` from `latent_weights`.
        maps: `(N, h, w, M)` from `latent_weights`.
        title: optional figure title.

    Returns:
        The matplotlib `Figure`.
    """
    hist = np.asarray(hist, np.float32)
    maps = np.asarray(maps, np.float32)
    n, m = hist.shape
    winners = np.argmax(maps, axis=-1).reshape(-1)
    share = np.bincount(winners, minlength=m) / max(winners.size, 1)
    fig = _new_figure((max(5.0, 0.16 * m + 2.5), 4.2 + 0.12 * n))
    grid = fig.add_gridspec(2, 2, height_ratios=[max(n, 3), 3], width_ratios=[40, 1],
                            hspace=0.35, wspace=0.03)
    ax = fig.add_subplot(grid[0, 0])
    image = ax.imshow(hist, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_ylabel("image", fontsize=8)
    ax.set_xticks([])
    if n <= 32:
        ax.set_yticks(np.arange(n))
    ax.tick_params(labelsize=7)
    ax.set_title(
        title or (
            f"mean $\\hat{{S}}$ per image: {int(np.sum(share > 0))}/{m} latents win "
            f"somewhere, top latent {100 * share.max():.0f} % of positions"
        ),
        fontsize=9,
    )
    fig.colorbar(image, cax=fig.add_subplot(grid[0, 1])).ax.tick_params(labelsize=6)
    ax = fig.add_subplot(grid[1, 0])
    ax.bar(np.arange(m), share, color="#1f77b4", width=0.85)
    ax.set_xlim(-0.5, m - 0.5)
    ax.set_xlabel("latent category", fontsize=8)
    ax.set_ylabel("argmax share", fontsize=8)
    ax.tick_params(labelsize=7)
    return fig


def latent_usage_image(model, images, preprocessing=None, batch_size=64, title=None):
    """An RGB picture of latent usage on some images, for TensorBoard.

    Args:
        model: an `LCRegModel` with its latent pool.
        images: model inputs, or raw uint8 images with `preprocessing` (see
            `latent_weights`).
        preprocessing: optional preprocessing dict.
        batch_size: images per forward pass.
        title: optional title.

    Returns:
        A uint8 array `(H, W, 3)`: the `latent_usage_figure` rendered.

    Example:
        >>> picture = latent_usage_image(model, x_test[:16])  # doctest: +SKIP
        >>> picture.dtype, picture.shape[-1]  # doctest: +SKIP
        (dtype('uint8'), 3)
    """
    hist, maps = latent_weights(model, images, preprocessing, batch_size)
    return figure_to_array(latent_usage_figure(hist, maps, title=title))


# ---------------------------------------------------------------------------
# Evaluation plots
# ---------------------------------------------------------------------------


def _nan(values):
    return np.array([np.nan if v is None else v for v in values], np.float64)


def plot_reliability(bins, path=None, ece=None, title=None):
    """A reliability diagram: accuracy per confidence bin against confidence.

    Bars are the accuracy of each non-empty bin, red hatched bars the gap to
    the bin's mean confidence, the diagonal is perfect calibration; a lower
    panel shows how many samples each bin holds.

    Args:
        bins: `evaluation.reliability_bins(...)` (or the `reliability` entry
            of an `evaluation_report`, with None for empty bins).
        path: where to save a PNG (None: do not save).
        ece: the ECE to write in the title (computed from `bins` if None).
        title: a title to use instead.

    Returns:
        The matplotlib `Figure`.

    Example:
        >>> bins = evaluation.reliability_bins(labels, probs)  # doctest: +SKIP
        >>> plot_reliability(bins, "reliability.png")  # doctest: +SKIP
    """
    edges = np.asarray(bins["edges"], np.float64)
    accuracy = _nan(bins["accuracy"])
    confidence = _nan(bins["confidence"])
    count = np.asarray(bins["count"], np.float64)
    num_bins = len(count)
    if ece is None:
        used = count > 0
        ece = float(np.sum(np.abs(accuracy[used] - confidence[used]) * count[used])
                    / max(count.sum(), 1))
    centers = (edges[:-1] + edges[1:]) / 2
    width = 1.0 / num_bins
    used = count > 0
    fig = _new_figure((5.2, 6.0))
    grid = fig.add_gridspec(2, 1, height_ratios=[3.2, 1], hspace=0.08)
    ax = fig.add_subplot(grid[0])
    ax.bar(centers[used], accuracy[used], width=width, color="#1f77b4",
           edgecolor="black", linewidth=0.6, label="accuracy")
    gap_low = np.minimum(accuracy, confidence)
    ax.bar(centers[used], np.abs(confidence - accuracy)[used], bottom=gap_low[used],
           width=width, color="#d62728", alpha=0.35, edgecolor="#d62728",
           hatch="//", linewidth=0.6, label="gap to confidence")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_xticklabels([])
    ax.legend(loc="upper left", fontsize=8)
    ece_text = "nan" if ece is None or np.isnan(ece) else f"{100 * ece:.2f} %"
    ax.set_title(title or f"Reliability diagram: ECE {ece_text} ({num_bins} bins)")
    ax = fig.add_subplot(grid[1])
    ax.bar(centers, count, width=width, color="#7f7f7f", edgecolor="black", linewidth=0.5)
    total = max(count.sum(), 1)
    mean_conf = float(np.nansum(confidence * count) / total)
    mean_acc = float(np.nansum(accuracy * count) / total)
    ax.axvline(mean_acc, color="#1f77b4", linestyle="-", label=f"accuracy {100 * mean_acc:.1f} %")
    ax.axvline(mean_conf, color="#d62728", linestyle="--",
               label=f"mean confidence {100 * mean_conf:.1f} %")
    ax.set_xlim(0, 1)
    ax.set_xlabel("confidence (top softmax probability)")
    ax.set_ylabel("samples")
    ax.legend(loc="upper left", fontsize=7)
    return _save(fig, path)


def plot_accuracy_by_frequency(report, path=None, title=None):
    """Per-class accuracy against training count (log x), splits marked.

    Classes are sorted by training count and joined in that order; each
    split's accuracy is drawn as a horizontal segment over its classes.
    The count rule's thresholds are dashed vertical lines; the boundaries
    of the report's other rule (MiSLAS index ranges), if any, are dotted
    lines between the ranked classes they separate.

    Args:
        report: `evaluation.evaluation_report(...)` (needs `per_class` and
            `splits`).
        path: where to save a PNG (None: do not save).
        title: optional title.

    Returns:
        The matplotlib `Figure`.

    Example:
        >>> report = evaluation.evaluation_report(labels, logits, counts)  # doctest: +SKIP
        >>> plot_accuracy_by_frequency(report, "accuracy_by_frequency.png")  # doctest: +SKIP
    """
    rows = sorted(report["per_class"], key=lambda r: (-r["train_count"], r["class"]))
    counts = np.array([max(r["train_count"], 1) for r in rows], np.float64)
    accuracy = 100 * _nan([r["accuracy"] for r in rows])
    names = [r["name"] for r in rows]
    fig = _new_figure((7.5, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(counts, accuracy, color="#1f77b4", alpha=0.35, linewidth=1)
    ax.scatter(counts, accuracy, color="#1f77b4", s=22, zorder=3, label="class")
    if len(rows) <= 40:
        for x, y, name in zip(counts, accuracy, names):
            if not np.isnan(y):
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(3, 4),
                            fontsize=6, rotation=30)
    ax.set_xscale("log")
    low, high = counts.min(), counts.max()
    ax.set_xlim(low / 1.6, high * 1.6)
    ax.set_ylim(-3, 108)
    ax.set_xlabel("training images of the class (log scale)")
    ax.set_ylabel("test accuracy of the class (%)")
    colors = {"many": "#2ca02c", "medium": "#ff7f0e", "few": "#d62728"}
    by_class = {r["class"]: r for r in rows}
    splits = report.get("splits", {})
    main_key = report.get("rule", "count")
    for key, result in splits.items():
        classes = result.get("classes")
        if classes is None:
            continue
        main = key == main_key
        for split, ids in classes.items():
            if not ids or result.get(split) is None:
                continue
            xs = [max(by_class[c]["train_count"], 1) for c in ids]
            style = "-" if main else ":"
            ax.hlines(100 * result[split], min(xs) / 1.15, max(xs) * 1.15,
                      colors=colors[split], linestyles=style, linewidth=2 if main else 1.2,
                      label=f"{split} {100 * result[split]:.1f} % [{key}]")
    if "count" in splits:
        rule = splits["count"]["rule"]  # "count (many > 100, few < 20)"
        found = re.findall(r"many > ([\d.]+), few < ([\d.]+)", rule)
        many, few = (float(v) for v in found[0]) if found else (100.0, 20.0)
        for value, text in ((many, f"many > {many:g}"), (few, f"few < {few:g}")):
            if low / 1.6 < value < high * 1.6:
                ax.axvline(value, color="black", linestyle="--", linewidth=0.8)
                ax.text(value, 104, text, fontsize=7, ha="center")
    for key, result in splits.items():
        if key == "count" or result.get("classes") is None:
            continue
        ranked = [max(r["train_count"], 1) for r in rows]
        first = len(result["classes"]["many"])
        second = first + len(result["classes"]["medium"])
        for cut in (first, second):
            if 0 < cut < len(ranked):
                x = float(np.sqrt(ranked[cut - 1] * ranked[cut]))
                ax.axvline(x, color="gray", linestyle=":", linewidth=1)
                ax.text(x, -1.5, f"{key} cut", fontsize=6, ha="center", color="gray")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    top1 = report.get("top1")
    ax.set_title(title or (
        f"Per-class accuracy by training frequency (top-1 "
        f"{'nan' if top1 is None else f'{100 * top1:.2f}'} %)"
    ), fontsize=10)
    ax.grid(True, which="major", alpha=0.25)
    return _save(fig, path)
