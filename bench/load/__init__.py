"""Load benchmark of the participant API: `python -m bench.load.run` (see bench/README.md)."""
