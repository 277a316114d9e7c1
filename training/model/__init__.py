"""The model: its configuration and presets, the encoders and the fused model, MAE's decoder,
checkpoints (safetensors + JSON) and model cards. May import data and the core."""
