"""Datasets: the bundled MNIST family and its Table 2 splits, packed image folders, the images a config uses."""
