"""Channels alerts are sent to: Slack incoming webhooks and generic JSON webhooks."""
