"""Pruning: weight criteria, node criteria and threshold rules in one registry
(bbbprune.pruning.registry), and one masking function. Importing the package registers every
criterion."""

from . import controls, criteria, nodes, thresholds  # noqa: F401  (they register themselves)
