"""Capture: the only layer that runs inside the user's process. It records; it never analyses."""
