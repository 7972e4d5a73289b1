"""`benchmark.py pipeline`: our tf.data JPEG pipeline against PIL, one core each."""

import os

from bench_common import machine, rates, write


def run_pipeline(args):
    """img/s per core: our tf.data JPEG pipeline vs a PIL pipeline, one core each."""
    import tempfile

    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from PIL import Image

    from lcreg_keras.data.pipelines import image_train_dataset

    folder = tempfile.mkdtemp(prefix="lcreg-bench-")
    rng = np.random.default_rng(0)
    paths = []
    low, high = (int(v) for v in args.sizes.split(","))
    for i in range(args.images):
        h, w = rng.integers(low, high + 1), rng.integers(low, high + 1)
        # Smooth random images compress like photos, unlike white noise.
        small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((int(w), int(h)), Image.BILINEAR)
        path = os.path.join(folder, f"{i}.jpg")
        image.save(path, quality=90)
        paths.append(path)
    labels = np.arange(args.images) % 10

    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)

    def ours(dct_scaling):
        dataset = image_train_dataset(paths, labels, 10, args.batch, image_size=224, color_jitter=0.0,
                                      seed=0, dct_scaling=dct_scaling)
        options = tf.data.Options()
        options.threading.private_threadpool_size = 1
        dataset = dataset.with_options(options)
        for _ in dataset.take(1):
            pass
        return rates(lambda: sum(int(x.shape[0]) for x, _ in dataset))

    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)

    def pil_sample(path, prng):
        image = Image.open(path).convert("RGB")
        width, height = image.size
        area = width * height
        for _ in range(10):
            target = area * prng.uniform(0.08, 1.0)
            aspect = np.exp(prng.uniform(np.log(3 / 4), np.log(4 / 3)))
            w = int(round(np.sqrt(target * aspect)))
            h = int(round(np.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                left, top = prng.integers(0, width - w + 1), prng.integers(0, height - h + 1)
                break
        else:
            w, h = min(width, height), min(width, height)
            left, top = (width - w) // 2, (height - h) // 2
        image = image.resize((224, 224), Image.BILINEAR, box=(left, top, left + w, top + h))
        if prng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        return (np.asarray(image, np.float32) / 255.0 - mean) / std

    from lcreg_keras.data import transforms

    contents = [tf.io.read_file(path) for path in paths]

    def ops(dct_scaling):
        """The decode, crop and resize ops alone (no tf.data), the same crops every call."""
        @tf.function
        def one(data, seed):
            image = transforms.decode_random_crop(data, seed, (0.08, 1.0), (3 / 4, 4 / 3),
                                                  dct_min_size=224 if dct_scaling else None)
            return transforms.resize(image, [224, 224])

        def run(images):
            for i, data in enumerate(images):
                one(data, tf.constant([i, 0]))
            return len(images)

        run(contents[:2])
        return rates(lambda: run(contents))

    def pil():
        prng = np.random.default_rng(0)

        def run():
            for path in paths:
                pil_sample(path, prng)
            return len(paths)

        return rates(run)

    # Interleaved, so a change in the machine's load hits all three alike;
    # one untimed round first (the first pass of each pays for warm-up).
    # Each is timed twice: images per wall-clock second and per CPU second
    # of this process (all its threads), the second unmoved by other
    # tenants' load on a shared machine.
    ours(False), ours(True), pil()
    rounds = []
    for _ in range(args.rounds):
        timed = {"tf_data": ours(False), "tf_data_dct": ours(True), "pil": pil(),
                 "ops": ops(False), "ops_dct": ops(True)}
        rounds.append({name: wall for name, (wall, _) in timed.items()}
                      | {name + "_per_cpu_s": cpu for name, (_, cpu) in timed.items()})
    report = {"machine": machine(), "images": args.images, "sizes": [low, high], "rounds": rounds}
    for r in rounds:
        for unit, key in (("wall", ""), ("CPU", "_per_cpu_s")):
            ours_, dct, pil_ = r["tf_data" + key], r["tf_data_dct" + key], r["pil" + key]
            print(f"img per {unit} s: tf.data (fused decode-and-crop, 1 thread) {ours_:.1f}; with "
                  f"dct_scaling {dct:.1f}; PIL (decode, crop, resize, flip) {pil_:.1f}; "
                  f"ratios to PIL {ours_ / pil_:.2f} and {dct / pil_:.2f}; the decode-crop-resize ops "
                  f"alone {r['ops' + key]:.1f}, with dct_scaling {r['ops_dct' + key]:.1f}")
    write(args.out, "pipeline.json", report)
