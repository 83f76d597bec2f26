"""Datasets: fetching and checking the files (registry), tensors and splits, generated and simulated data."""
