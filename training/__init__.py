"""mmrt.training: datasets and preprocessing, encoders, pretraining and downstream training.

Modules that need torch import it themselves; importing this package does not,
so the dataset generator (``mmrt.training.datagen``) runs without torch.
"""
