"""mmrt.runtime: the edge runtime. Never imports torch: it must run with only the `serve` extra."""
