"""Serving what the lake knows to people: the dashboard app and the monthly report (read-only)."""
