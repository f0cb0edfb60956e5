"""Campaigns: specs, contact policy, launch, channels, attribution and measurement (C1–C3, C5)."""
