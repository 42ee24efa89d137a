"""Fixtures for the matcher's tests (the session profiles carry Splink's similarity jar)."""
