"""The notebooks' world map: countries decoded from the TopoJSON, coloured by their value."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.colors import to_rgba

from cardlake.notebook import country_rings, world_map


def test_outlines_are_where_the_countries_are() -> None:
    rings = country_rings()
    assert {"USA", "FRA", "GBR", "BRA", "AUS", "RUS"} <= set(rings)
    lon, lat = zip(*max(rings["GBR"], key=len), strict=True)  # Great Britain, not N. Ireland
    assert -6.5 < min(lon) < -4.5 and 1.0 < max(lon) < 2.0
    assert 49.5 < min(lat) < 51.0 and 58.0 < max(lat) < 59.0
    # Russia crosses the antimeridian: its rings stay on the eastern side, none spans the globe.
    assert all(max(x for x, _ in r) - min(x for x, _ in r) < 200 for r in rings["RUS"])


def test_each_country_takes_the_colour_of_its_value_and_others_are_grey() -> None:
    fig, ax = plt.subplots()
    world_map(ax, pd.Series({"US": 30.0, "FRA": 10.0, "GB": 20.0}), title="t", cmap="Blues")
    (polys,) = ax.collections
    faces = polys.get_facecolors()
    rings = country_rings()
    order = [country for country, rs in rings.items() for _ in rs]
    colour = {country: tuple(faces[i]) for i, country in enumerate(order)}
    blues = plt.get_cmap("Blues")
    assert colour["USA"] == blues(1.0)  # the largest value: the darkest blue
    assert colour["FRA"] == blues(0.0)
    assert colour["GBR"] == blues(0.5)
    assert colour["BRA"] == to_rgba("#e5e5e5")
    plt.close(fig)
