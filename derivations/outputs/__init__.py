"""What the engine makes: kernels (verified, written safely), generated.py, docs, reports."""
