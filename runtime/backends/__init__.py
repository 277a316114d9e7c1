"""The backends: graphs behind one interface (ONNX Runtime sessions, TensorRT engines), a verified
bundle opened into them, the precision chosen at start-up, the process's allocator. May import
only the core."""
