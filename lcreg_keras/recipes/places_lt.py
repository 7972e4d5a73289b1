"""Places-LT, ResNet-152 (ImageNet-pretrained, frozen) + one new block, LCReg: Table 2(c).

    python -m lcreg_keras.recipes.places_lt --data_dir=/data/places365 \
        --backbone_weights=imagenet           # Keras downloads the weights once
    python -m lcreg_keras.recipes.places_lt --smoke --data_dir=...

Data: the Places-LT lists of Liu et al. (`Places_LT_train.txt`, 62,500
images, 4,980 to 5 a class over 365 classes; `Places_LT_test.txt`, 36,500),
one `relative/path label` per line; `--data_dir` is the image root,
`--path_prefix` adapts other layouts.

Backbone: `places_resnet152`, `keras.applications.ResNet152` (v1) with its
ImageNet weights, frozen, plus one new bottleneck block. MiSLAS uses
torchvision's ImageNet-pretrained ResNet-152 (v1.5); no such checkpoint
ships for Keras, and a pretrained trunk matters more here than the v1 / v1.5
difference, so this recipe keeps `keras.applications` for its weights
(`resnet152_v1_5` exists, but only from scratch).

Stage one (MiSLAS): ResNet-152 pretrained on ImageNet and frozen, one new
trainable bottleneck block on top (`places_resnet152`), mixup alpha 0.2,
lr 0.1 for the global batch 256, coupled weight decay 5e-4, 90 epochs, cosine.
Offline machines pass a weights file: `--backbone_weights=/path/to/
resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5`. LCReg: M = 100,
diagonal covariance.
Stage two (MiSLAS's `places_resnet152_stage2_mislas.yaml`): 10 epochs,
batch 256, cosine from lr 0.1, weight decay 5e-4; class-aware batches (runs
of 4 images a class), ceil(62,500 / 256) + 1 = 246 batches an epoch as
MiSLAS's loop (the sampler's nominal 4,980 x 365 would be 7,100);
label-aware smoothing 0.4 / 0.1, classifier lr x0.05; shifted BN as MiSLAS
runs it on Places-LT: the pretrained trunk stays frozen in inference mode
(its weights and BatchNorm statistics do not change), only the new block's
BatchNorm statistics re-estimate.

Paper (top-1 %): LCReg 40.2; MiSLAS 40.4; MiSLAS stage one alone 29.4.
Hardware: one or more GPUs; most of a day on one (an estimate, not measured).
"""

from lcreg_keras.recipes import runner
from lcreg_keras.recipes.config import Config


def get_config():
    return Config(
        dataset="places_lt",
        train_list="Places_LT_train.txt",
        test_list="Places_LT_test.txt",
        imbalance_factor=996,  # 4980 / 5, for the reports
        backbone="places_resnet152",
        backbone_weights="imagenet",
        image_size=224,
        resize_size=256,
        color_jitter=0.4,
        num_latents=100,
        covariance="diagonal",
        epochs=90,
        batch_size=256,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="cosine",
        warmup_epochs=0,
        mixup_alpha=0.2,
        stage="both",
        stage2_epochs=10,
        stage2_lr_factor=0.05,
        eps_head=0.4,
        eps_tail=0.1,
        shift_bn=True,
        eval_rule="count",
        eval_batch_size=256,
        eval_every=10,
        model_dir="runs/places_lt",
        paper_top1=40.2,
    )


if __name__ == "__main__":
    runner.main(get_config)
