"""Starting runbook runs: from intake, from the CLI, and how they are served."""
