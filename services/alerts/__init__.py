"""Alerts: rules that fire once per (rule, scope, period, threshold), an outbox of
deliveries per channel, and the messages people read."""
