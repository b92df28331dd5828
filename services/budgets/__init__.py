"""Budgets: an amount per calendar period for a scope, its spend and its forecast."""
