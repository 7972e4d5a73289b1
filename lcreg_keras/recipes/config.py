"""The experiment description every recipe fills in."""

import dataclasses
from typing import Optional, Tuple, Union


@dataclasses.dataclass
class Config:
    """One experiment: data, model, stage-one optimisation, evaluation.

    A recipe module returns one of these from `get_config()`; the runner lets
    absl flags override any field named in `runner.FLAG_FIELDS`.
    """

    # Data.
    dataset: str = "fashion_mnist_lt"
    data_dir: Optional[str] = None
    imbalance_factor: float = 100.0
    # List-file datasets (ImageNet-LT, Places-LT): `data_dir` is the image
    # root; list files are looked up in `data_dir` unless given as paths.
    train_list: Optional[str] = None
    val_list: Optional[str] = None
    test_list: Optional[str] = None
    path_prefix: str = ""  # prepended to each listed path
    image_size: int = 224  # random-resized-crop / centre-crop size
    resize_size: int = 256  # test-time resize before the centre crop
    color_jitter: float = 0.4
    # Decode a JPEG training crop at 1/2, 1/4 or 1/8 scale when it is at least
    # twice `image_size` a side (faster on large images; a few grey levels
    # from the full decode, so off by default; docs/results.md).
    dct_scaling: bool = False
    skip_bad_images: bool = False  # count and skip unreadable images
    # Scan every listed file's header and tail before training (about a
    # minute per million files); "decode" also decodes every image strictly
    # (finds damaged JPEG data; cached in run.json); False leaves bad files
    # to the read-time check.
    check_images: Union[bool, str] = True
    # Caps on the number of examples (None: all); `--smoke` sets them.
    max_train_examples: Optional[int] = None
    max_test_examples: Optional[int] = None
    # Model.
    backbone: str = "resnet32"
    backbone_width: int = 16
    # ImageNet ResNets: None, "imagenet" (Keras downloads once) or a .h5 path.
    backbone_weights: Optional[str] = None
    num_latents: int = 40
    alpha: float = 0.1
    beta: float = 0.1
    gamma: float = 1.0
    isda_lambda0: float = 0.5
    covariance: str = "full"
    fusion: str = "residual"
    latent: bool = True
    latent_aug: bool = True
    latent_recon: bool = True
    temperature: float = 1.0
    similarity: str = "dot"
    # The samples of Eq. 5-6 (spec Sec. 3): "latents" (3.a) or "parts" (3.b);
    # explicit: augmented latents enter Eq. 3 in training (3.c).
    latent_aug_samples: str = "latents"
    latent_aug_explicit: bool = False
    # Stage one (MiSLAS): SGD with coupled weight decay, mixup.
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    schedule: str = "warmup_step"  # or "cosine"
    warmup_epochs: int = 5
    lr_decay_at: Tuple[float, ...] = (0.8, 0.9)  # fractions of `epochs`
    lr_decay_factors: Tuple[float, ...] = (0.1, 0.01)
    mixup_alpha: float = 1.0
    # Stage two (MiSLAS decoupled fine-tuning, spec Sec. 5).
    stage: str = "both"  # "1", "2" (from model_dir/stage1) or "both"
    stage2_epochs: int = 10
    stage2_lr: Optional[float] = None  # None: `lr`
    stage2_lr_factor: float = 0.2
    stage2_batch_size: Optional[int] = None  # None: `batch_size`
    # None: MiSLAS's ceil(N / B) + 1 batches of B = stage2_batch_size.
    stage2_epoch_size: Optional[int] = None
    stage2_samples_per_class: int = 4  # MiSLAS's num_samples_cls
    eps_head: float = 0.3
    eps_tail: float = 0.0
    shift_bn: bool = False
    # Long-tailed baselines (issue 15; lcreg_keras/recipes/baselines.py).
    loss: str = "ce"  # ce | logit_adjusted | balanced_softmax | ldam_drw | cb_softmax | cb_focal
    la_tau: float = 1.0  # logit-adjusted loss: z + tau * log prior
    ldam_s: float = 30.0  # LDAM's cosine scale s
    ldam_max_margin: float = 0.5  # LDAM's largest margin (the rarest class's)
    drw_epoch: Optional[int] = None  # first re-weighted epoch of DRW (None: 0.8 x epochs)
    cb_beta: float = 0.9999  # effective-number beta (cb_softmax, cb_focal, DRW)
    focal_gamma: float = 1.0  # cb_focal's gamma
    stage2: str = "mislas"  # mislas | crt | lws | tau_norm | none
    posthoc_tau: float = 0.0  # evaluate z - tau * log prior (0: off)
    heldout_fraction: Optional[float] = None  # held out of training (None: 0.1 for tau_norm, else 0)
    # Evaluation: "count" (> 100 many, < 20 few) or an index preset name.
    eval_rule: str = "count"
    eval_batch_size: int = 512
    eval_every: int = 0  # validate every N epochs (0: only at the end)
    # Run.
    distribution: str = "auto"  # auto | none | mirrored | multi_worker | data_parallel
    mixed_precision: Optional[str] = None  # "mixed_bfloat16" | "mixed_float16"
    seed: int = 0
    # Seed of the data subsets (the long-tailed draw, smoke caps), fixed across
    # `seed` as MiSLAS fixes it (rand_number=0): a paired multi-seed study
    # compares methods on one training set.
    subset_seed: int = 0
    model_dir: str = "runs/default"
    # What the paper reports for this row (top-1 %), printed beside ours.
    paper_top1: Optional[float] = None

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)
