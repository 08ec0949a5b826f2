"""Speed measurements (run as modules, e.g. ``python -m benchmarks.train_speed``); not tests."""
