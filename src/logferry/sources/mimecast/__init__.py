"""Placeholder: this connector is being built (issue 4)."""
