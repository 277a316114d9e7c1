"""mmrt.benchmarks: robustness and latency under sensor dropout, behind `mmrt bench`."""
