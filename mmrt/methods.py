"""Names of the pretraining objectives and downstream training methods (shared by the CLI, the
trainer and the reports)."""

METHODS: dict[str, str] = {
    "lp": "linear probe on frozen encoders",
    "ft": "fine-tune every weight, head initialised from the probe",
    "masd": "fine-tune plus self-distillation from M_T to the other modalities (MASD)",
    "wiseft": "alpha * fine-tuned + (1 - alpha) * probe weights (WiSE-FT)",
    "masd+wiseft": "alpha * MASD + (1 - alpha) * probe weights",
    "masd-cw": "MASD with each example's distillation weighted by the teacher's confidence (mmrt's, "
               "not the paper's)",
    "moddrop": "fine-tune with modalities dropped at random per example",
}

OBJECTIVES: dict[str, str] = {
    "contrastive": "pairwise InfoNCE between the modalities of each clip",
    "mae": "masked autoencoding per modality, the encoders' last block shared",
}
