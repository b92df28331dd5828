"""Anomalies in hourly spend and calls, per project and per dimension value."""
