"""Evaluation of a zoo (evaluate) and its reports (report)."""
