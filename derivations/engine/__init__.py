"""The engine: derive each gradient, prove or refute a claim, through kinks and shifted reads."""
