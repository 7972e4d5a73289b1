"""iNaturalist 2018, ResNet-50 v1.5, LCReg: Table 2(b) of the paper.

    python -m lcreg_keras.recipes.inaturalist2018 --data_dir=/data/inat2018
    python -m lcreg_keras.recipes.inaturalist2018 --smoke --data_dir=...

Data: `train2018.json` (437,513 images, 8,142 classes, 1,000 to 2 a class)
and `val2018.json` (24,426 images), read as `images[i].file_name` matched to
`annotations[i].category_id` by image id; or MiSLAS's
`iNaturalist18_train.txt` / `iNaturalist18_val.txt` (`path label` lines,
the same images and labels), looked up in `--data_dir` when the JSON files
are not there. `--data_dir` is the folder the file names start from (and
holds the lists unless `--train_list` / `--test_list` give names or paths).

Backbone: `resnet50_v1_5`, torchvision's ResNet-50 as MiSLAS trains it from
scratch (stride in the 3x3 conv, no conv bias, BatchNorm momentum 0.1 in
PyTorch terms); `keras.applications`' v1 ResNet-50 is only worth its
ImageNet weights, which this recipe does not use.

Stage one (MiSLAS): ResNet-50 from scratch, ImageNet-style augmentation,
mixup alpha 0.2, lr 0.1 for the global batch 256, coupled weight decay 1e-4,
200 epochs, cosine. LCReg: M = 200 (Table 3), diagonal covariance.
Stage two (MiSLAS's `ina2018_resnet50_stage2_mislas.yaml`): 10 epochs, batch
256, cosine from lr 0.1, weight decay 1e-4; class-aware batches (runs of 4
images a class), ceil(437,513 / 256) + 1 = 1,711 batches an epoch as
MiSLAS's loop (the sampler's nominal 1,000 x 8,142 would be 31,804);
label-aware smoothing 0.3 / 0.0, classifier lr x0.05, shifted BN.

Paper (top-1 %): LCReg 72.6; MiSLAS 71.6; MiSLAS stage one alone 66.9.
Hardware: several GPUs; days on 8 GPUs (an estimate, not measured here).
"""

from lcreg_keras.recipes import runner
from lcreg_keras.recipes.config import Config


def get_config():
    return Config(
        dataset="inaturalist2018",
        # None: the default lists, train2018.json / val2018.json, else
        # MiSLAS's iNaturalist18_train.txt / iNaturalist18_val.txt.
        train_list=None,
        test_list=None,
        imbalance_factor=500,  # 1000 / 2, for the reports
        backbone="resnet50_v1_5",  # torchvision's, as MiSLAS (see above)
        image_size=224,
        resize_size=256,
        color_jitter=0.4,
        num_latents=200,
        covariance="diagonal",
        epochs=200,
        batch_size=256,
        lr=0.1,
        momentum=0.9,
        weight_decay=1e-4,
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
        model_dir="runs/inaturalist2018",
        paper_top1=72.6,
    )


if __name__ == "__main__":
    runner.main(get_config)
