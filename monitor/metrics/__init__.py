"""Prometheus metrics of Slicewatch."""
