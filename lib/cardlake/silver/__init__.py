"""Silver: standardisation column functions, entity resolution, cleaned tables."""
