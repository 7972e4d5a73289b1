"""The rows of tools/ablation_study.py: each is a list of recipe flags, nothing else.

One place says what every row of every study runs, as a big_vision config
says an experiment; `ablation_study.py` runs them and `study_report.py` tabulates.

Rows:
  ce            plain cross-entropy: no latents, no mixup, stage one only
  mislas        MiSLAS-style: mixup stage one, then stage two
  latent_only   + latent categories (no L_aug, no L_recon), both stages
  latent_aug    + latent categories + L_aug
  latent_recon  + latent categories + L_recon
  lcreg         LCReg: latent categories + L_aug + L_recon, both stages
  lcreg_tau0.1, lcreg_cosine, lcreg_m10, lcreg_lambda0.1, lcreg_replace
                LCReg with one choice changed (asked for by name only)
  (latent_only above removes L_aug; the t4_ rows below follow the spec's Table 4.)

Readings of Eq. 5-6 (spec Sec. 3): latents (3.a), parts (3.b),
latents_explicit and parts_explicit (3.c on top), parts_tau0.1 (parts with a
sharper Eq. 2). For each reading R:
  lcreg_R           LCReg, all components, samples of reading R
  t4_only_R         latent category only: L_aug at lambda_0 = 0 (plain CE on the
                    latent classes), no L_recon
  t4_aug_R          + latent aug (lambda ramps to lambda_0), no L_recon
  t4_recon_R        + reconstruction, lambda_0 = 0
  t4_fusion_none_R  LCReg with fusion=none (latents act only through the losses)
Groups (for --rows): default, baselines (below), screening = mislas + lcreg_R for every reading;
table4_R = mislas, t4_only_R, t4_aug_R, t4_recon_R, lcreg_R, t4_fusion_none_R.

Long-tailed baselines (`--rows=baselines` runs ce and these with mislas and
lcreg). Their stage one is plain instance-balanced training without mixup, as
in each paper (Menon et al., Ren et al., Cao et al., Kang et al., Cui et al.);
only mislas and lcreg mix:
  ce_posthoc_la     ce's model, evaluated with post-hoc logit adjustment (tau 1)
  la_loss           logit-adjusted cross-entropy (tau 1)
  balanced_softmax  balanced softmax
  ldam_drw          LDAM (cosine classifier, s 30, max margin 0.5) + DRW from 0.8 x epochs
  crt               cRT (classifier re-trained on class-balanced batches) over ce's stage one
  tau_norm          ce stage one on 90 % of the training data, tau chosen on the other 10 %
  lws, cb_softmax, cb_focal   (asked for by name only)
ce_posthoc_la evaluates ce's model, crt and lws start from a copy of ce's
stage one (`REUSES`): the same seed's ce run is their stage one, so the paired
difference with ce is the post-hoc step or the second stage alone.
"""

ROWS = {
    "ce": ["--latent=false", "--mixup_alpha=0", "--stage=1"],
    "mislas": ["--latent=false", "--stage=both"],
    "latent_only": ["--latent_aug=false", "--latent_recon=false", "--stage=both"],
    "latent_aug": ["--latent_recon=false", "--stage=both"],
    "latent_recon": ["--latent_aug=false", "--stage=both"],
    "lcreg": ["--stage=both"],
    # Sensitivity of LCReg to the choices the paper leaves open or the spec
    # flags (not in the default rows): a sharper Eq. 2 softmax, cosine
    # similarity (no saturated sigmoid), fewer latents, a weaker ISDA, and
    # replacing instead of adding the reconstruction.
    "lcreg_tau0.1": ["--stage=both", "--temperature=0.1"],
    "lcreg_cosine": ["--stage=both", "--similarity=cosine"],
    "lcreg_m10": ["--stage=both", "--num_latents=10"],
    "lcreg_lambda0.1": ["--stage=both", "--isda_lambda0=0.1"],
    "lcreg_replace": ["--stage=both", "--fusion=replace"],
    # Long-tailed baselines (issue 15): stage one without latents or mixup.
    "ce_posthoc_la": ["--latent=false", "--mixup_alpha=0", "--stage=1", "--posthoc_tau=1"],
    "la_loss": ["--latent=false", "--mixup_alpha=0", "--stage=1", "--loss=logit_adjusted",
                "--la_tau=1"],
    "balanced_softmax": ["--latent=false", "--mixup_alpha=0", "--stage=1",
                         "--loss=balanced_softmax"],
    "ldam_drw": ["--latent=false", "--mixup_alpha=0", "--stage=1", "--loss=ldam_drw"],
    "crt": ["--latent=false", "--mixup_alpha=0", "--stage=both", "--stage2=crt"],
    "tau_norm": ["--latent=false", "--mixup_alpha=0", "--stage=both", "--stage2=tau_norm"],
    "lws": ["--latent=false", "--mixup_alpha=0", "--stage=both", "--stage2=lws"],
    "cb_softmax": ["--latent=false", "--mixup_alpha=0", "--stage=1", "--loss=cb_softmax"],
    "cb_focal": ["--latent=false", "--mixup_alpha=0", "--stage=1", "--loss=cb_focal"],
}
READINGS = {
    "latents": ["--latent_aug_samples=latents"],
    "parts": ["--latent_aug_samples=parts"],
    "latents_explicit": ["--latent_aug_samples=latents", "--latent_aug_explicit=true"],
    "parts_explicit": ["--latent_aug_samples=parts", "--latent_aug_explicit=true"],
    "parts_tau0.1": ["--latent_aug_samples=parts", "--temperature=0.1"],
}
# Table 4's components as the spec defines them (Sec. 3, "Table 4's rows").
TABLE4 = {
    "t4_only": ["--isda_lambda0=0", "--latent_recon=false"],
    "t4_aug": ["--latent_recon=false"],
    "t4_recon": ["--isda_lambda0=0"],
    "t4_fusion_none": ["--fusion=none"],
}
ROW_GROUPS = {"screening": ["mislas"] + [f"lcreg_{r}" for r in READINGS]}
for _reading, _flags in READINGS.items():
    ROWS[f"lcreg_{_reading}"] = ["--stage=both", *_flags]
    for _component, _extra in TABLE4.items():
        ROWS[f"{_component}_{_reading}"] = ["--stage=both", *_flags, *_extra]
    ROW_GROUPS[f"table4_{_reading}"] = (
        ["mislas"] + [f"{c}_{_reading}" for c in TABLE4 if c != "t4_fusion_none"]
        + [f"lcreg_{_reading}", f"t4_fusion_none_{_reading}"]
    )
DEFAULT_ROWS = ("ce", "mislas", "latent_only", "latent_aug", "latent_recon", "lcreg")
BASELINE_ROWS = ("ce", "ce_posthoc_la", "la_loss", "balanced_softmax", "ldam_drw", "crt",
                 "tau_norm", "mislas", "lcreg")
ROW_GROUPS.update(default=list(DEFAULT_ROWS), baselines=list(BASELINE_ROWS))
# Rows that start from another row's finished run of the same seed, so that
# their paired difference with it measures their own step alone, as in the
# papers: cRT and LWS re-train or re-scale the classifier of the
# instance-balanced (ce) model, and post-hoc adjustment changes no weight.
#   ("stage_one", donor): the donor's stage one is copied in; only stage two runs.
#   ("evaluate", donor): the donor's final model is evaluated under the row's flags.
# The donor runs first (it is added to the jobs when not asked for); a row's
# `minutes` include the donor's.
REUSES = {"crt": ("stage_one", "ce"), "lws": ("stage_one", "ce"),
          "ce_posthoc_la": ("evaluate", "ce")}


def donor_of(row):
    """The row whose run of the same seed `row` starts from (`REUSES`), or None."""
    return REUSES.get(row, (None, None))[1]


def expand_rows(text):
    """Row names from a comma-separated list; group names expand, repeats drop."""
    rows = []
    for name in text.split(","):
        for row in ROW_GROUPS.get(name, [name]):
            if row not in rows:
                rows.append(row)
    return rows
