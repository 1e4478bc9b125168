"""What a run leaves behind: events, audit log, console, reports."""
