"""Cardlake: a PySpark lakehouse for card and retail-banking analytics."""
