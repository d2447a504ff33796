"""Probes on one layer of weights: ProbeX (probex), the linear baselines and the low-rank probe (linear), their
shared training loop (_train) and multi-label metrics (metrics)."""
