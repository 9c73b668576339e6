"""Disentanglement against known generating factors (the shapes dataset, `alae dataset make shapes`):
`scores` defines the metrics (MIG, DCI, SAP, linear probes) as disentanglement_lib does;
`evaluate` scores a trained run's codes (`alae eval disentanglement`) and draws its figures."""
