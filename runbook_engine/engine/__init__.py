"""Running a runbook: rendering, the executor, retries, run state, locks."""
