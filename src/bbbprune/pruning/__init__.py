"""Pruning criteria (score functions), masking, and threshold rules."""
