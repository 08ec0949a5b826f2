"""The statement language: a layer, its claims, its functions, and the forward as written."""
