"""Sequence packing."""
