"""Parley: OpenAI-compatible models in Slack and Discord threads."""
