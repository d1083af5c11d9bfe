"""Pure decisions of the runbooks (which plans to propose from what was read): testable without Prefect."""
