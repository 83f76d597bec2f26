"""Deployable networks: structured rebuilds, shrink of any network (Torch-Pruning), complexity
counts, export formats and their loader."""
