"""Deployable networks: structured rebuilds, complexity counts, export formats and their loader."""
