"""Data: a dataset folder read into tensors (decoded once, cached), splits and validation holdouts,
augmentation, the tokenizer, the log-mel front end's layout, pool overlap checks. May import only
the core."""
