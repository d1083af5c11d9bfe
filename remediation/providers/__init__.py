"""Capabilities the runbooks use, one ``typing.Protocol`` each, with live and simulated implementations."""
