"""Automated incident remediation for kamkmserve."""
