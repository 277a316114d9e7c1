"""Experiments: `mmrt train` (one method on one modality set), `mmrt experiment` (every method on
every modality set, scored), `mmrt tune`, and their results, reports and plots. May import every
training room and the core."""
