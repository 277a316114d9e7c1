"""mmrt.export: each modality encoder to its own ONNX graph (and TensorRT engine) in a verified bundle."""
