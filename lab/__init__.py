"""Lab scripts and one-off studies, run from the checkout (`python -m lab.<name>`); not installed
with mmrt. Each says what it measures and which page under docs/ quotes its figures."""
