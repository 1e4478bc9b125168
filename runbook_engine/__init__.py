"""runbook: declarative runbooks, validated, rendered and run locally or over SSH,
with retries, rollback and a tamper-evident audit log."""

__version__ = "0.1.0"

__all__ = ["__version__"]
