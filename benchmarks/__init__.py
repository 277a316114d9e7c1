"""Lab benchmarks and one-off studies, run from the checkout (`python -m benchmarks.<name>`); not
installed with mmrt. Their figures are reported, dated, under docs/results/."""
