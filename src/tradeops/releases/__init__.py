"""Release mechanics: host layout, staging, verification, activation, release log."""
