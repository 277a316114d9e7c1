"""The peer benchmark: `mmrt serve` beside MLServer and Triton serving the same engine (see bench.py)."""
