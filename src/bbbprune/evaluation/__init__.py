"""Evaluation of trained models: metrics of a predictive, pruning evaluations, and where records live."""
