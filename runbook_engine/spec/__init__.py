"""What a runbook *is*: loading, schema, model, validation, params, inventory."""
