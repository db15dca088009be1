"""Slicewatch: a streaming drift monitor for production inference logs."""

__version__ = "0.1.0"
