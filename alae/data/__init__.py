"""Datasets: MNIST idx files (bundled) and their Table 2 splits."""
