"""What the data refuses: bad input, or well-formed requests the current data does
not allow. Knows nothing about HTTP (api.py maps these to 400 and 409)."""

from __future__ import annotations


class InvalidInputError(Exception):
    """The request is malformed (bad email, unknown symbol, zero quantity...)."""


class ConflictError(Exception):
    """The request is well formed but the current data refuses it."""
