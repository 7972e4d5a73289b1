"""ImageNet-LT, ResNet-50 v1.5, LCReg: Table 2(a) of the paper.

    python -m lcreg_keras.recipes.imagenet_lt --data_dir=/data/imagenet      # both stages
    python -m lcreg_keras.recipes.imagenet_lt --data_dir=... --stage=2       # stage two only
    python -m lcreg_keras.recipes.imagenet_lt --smoke --data_dir=...         # a minute on a CPU

Data: the ImageNet-LT lists of Liu et al. (`ImageNet_LT_train.txt`, 115,846
images, 1,280 to 5 a class; `ImageNet_LT_test.txt`, 50,000 images), one
`relative/path label` per line. `--data_dir` is the image root (the folder the
listed paths start from); the lists are looked up there unless
`--train_list` / `--test_list` give paths; `--path_prefix` is joined in front
of every listed path where the layout differs. Check a copy before a long run:
`python tools/check_dataset.py --dataset=imagenet_lt --data_dir=...`.

Backbone: `resnet50_v1_5`, torchvision's ResNet-50 v1.5 (stride in the 3x3 conv,
no conv bias, BatchNorm momentum 0.1 in PyTorch terms), what MiSLAS trains
from scratch; 23,508,032 parameters. `keras.applications.ResNet50` is v1
(stride in the first 1x1, biased convs, momentum 0.01) and is kept only for
its ImageNet weights (`--backbone=resnet50`), which this from-scratch
recipe does not use.

Stage one (MiSLAS): ResNet-50 from scratch, random-resized crop 224, flip,
colour jitter 0.4, mixup alpha 0.2, SGD momentum 0.9, lr 0.1 for the global
batch 256, coupled weight decay 5e-4, 180 epochs, cosine. LCReg: M = 100
(Table 3), alpha = beta = 0.1, gamma = 1, lambda_0 = 0.5, diagonal covariance
(D = 2048: a full one is 1.6 GB).
Stage two (MiSLAS's `imagenet_resnet50_stage2_mislas.yaml`): 10 epochs,
batch 256, cosine from lr 0.1, weight decay 5e-4; class-aware batches (runs
of 4 images a class), ceil(115,846 / 256) + 1 = 454 batches an epoch as
MiSLAS's loop (the sampler's nominal 1,280 x 1,000 would be 5,000);
label-aware smoothing 0.3 / 0.0, classifier lr x0.05, shifted BN (the
backbone's BatchNorm statistics re-estimate, its weights stay fixed).
Test: resize 256, centre crop 224.

Paper (top-1 %): LCReg 55.3; MiSLAS 52.7; MiSLAS stage one alone 45.5.
Hardware: several GPUs (`--distribution=auto` mirrors over all visible GPUs
on TensorFlow, data-parallel on JAX; `--mixed_precision=mixed_bfloat16`);
about a day on 8 GPUs (an estimate, not measured here).
"""

from lcreg_keras.recipes import runner
from lcreg_keras.recipes.config import Config


def get_config():
    return Config(
        dataset="imagenet_lt",
        train_list="ImageNet_LT_train.txt",
        test_list="ImageNet_LT_test.txt",
        imbalance_factor=256,  # 1280 / 5, for the reports; the lists fix the data
        backbone="resnet50_v1_5",  # torchvision's, as MiSLAS (see above)
        backbone_weights=None,
        image_size=224,
        resize_size=256,
        color_jitter=0.4,
        num_latents=100,
        covariance="diagonal",
        epochs=180,
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
        eps_head=0.3,
        eps_tail=0.0,
        shift_bn=True,
        eval_rule="count",
        eval_batch_size=256,
        eval_every=10,
        model_dir="runs/imagenet_lt",
        paper_top1=55.3,
    )


if __name__ == "__main__":
    runner.main(get_config)
