"""Printing: sympy index expressions and claims as jax.numpy code, LaTeX, and its layout."""
