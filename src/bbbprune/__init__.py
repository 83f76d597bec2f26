"""bbbprune: train Bayesian neural networks and baselines, prune them, write tables."""

__version__ = "0.1.0"
