"""Gold: star schema, monthly customer features and KPIs, built from silver month by month."""
