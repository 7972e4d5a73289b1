"""CIFAR-100-LT, ResNet-32, LCReg: Table 1 of the paper.

    python -m lcreg_keras.recipes.cifar100_lt --data_dir=~/data/cifar         # IF 100, both stages
    python -m lcreg_keras.recipes.cifar100_lt --flagfile=recipes/cifar100_lt_if10_stage1.flags
    python -m lcreg_keras.recipes.cifar100_lt --smoke

Data: CIFAR-100 made long-tailed (spec Sec. 7; IF 100 keeps 500 down to 5
images a class, 10,847 in all); the balanced 10,000-image test set.
`--data_dir` may hold the official `cifar-100-python.tar.gz`.

Stage one: as CIFAR-10-LT (MiSLAS: ResNet-32, mixup 1, lr 0.1, batch 128,
weight decay 2e-4, 200 epochs, warm-up 5, x0.1 at 160, x0.01 at 180) with
M = 50 (Table 3).
Stage two (MiSLAS's `cifar100_imb001_stage2_mislas.yaml`): as CIFAR-10-LT
(10 epochs, batch 128, class-aware runs of 4, ceil(N / B) + 1 batches an
epoch: 86 at IF 100, 100 at IF 50, 154 at IF 10), label-aware smoothing
0.4 / 0.1, classifier lr x0.2, shifted BN (IF 100; the IF 50 and IF 10
flagfiles set 0.3 / 0.0, x0.1 and 0.2 / 0.0, x0.1).

Paper (top-1 %): LCReg 47.6 (IF 100), 52.5 (IF 50), 63.8 (IF 10); MiSLAS 47.0 /
52.3 / 63.2; MiSLAS stage one alone 39.5 / 45.4 / 59.1.
Hardware: one GPU; a few hours (an estimate, not measured here).
"""

from lcreg_keras.recipes import cifar10_lt
from lcreg_keras.recipes import runner


def get_config():
    return cifar10_lt.get_config().replace(
        dataset="cifar100_lt",
        num_latents=50,
        stage2_lr_factor=0.2,
        eps_head=0.4,
        eps_tail=0.1,
        shift_bn=True,
        eval_rule="cifar100",
        model_dir="runs/cifar100_lt",
        paper_top1=47.6,
    )


if __name__ == "__main__":
    runner.main(get_config)
