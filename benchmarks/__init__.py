"""`mmrt bench`: robustness and latency under sensor dropout through the real server (installed
with mmrt; the lab scripts live in the checkout's lab/ folder)."""
