"""Evaluation of cascade and routing policies on held-out logged data."""
