"""Campaigns: many runs of scenarios, schedule exploration strategies, finding signatures,
reproducers, minimisation and replay (docs/campaigns.md)."""
