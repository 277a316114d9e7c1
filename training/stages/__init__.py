"""The stages: the training loop and the objectives it runs (contrastive or MAE pretraining, linear
probe, fine-tuning, MASD, modality dropout, WiSE-FT), evaluation of a model on a split, speed and
device setup. May import the model, data and the core."""
