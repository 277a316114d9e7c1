"""`mmrt bench`: robustness and latency under sensor dropout through the real server (installed
with mmrt; the lab benchmarks live in the checkout's benchmarks/ folder)."""
