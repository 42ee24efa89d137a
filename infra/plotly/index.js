// Plotly.js with only the trace types lib/cardlake/serve/app.py draws (scatter is in the core:
// px.line, px.area, add_scatter); tests/serve/test_app.py checks the pages draw no other.
// dcc.Graph uses window.Plotly once this has run.
var Plotly = require('plotly.js/lib/core');

Plotly.register([
    require('plotly.js/lib/bar'),        // px.bar, add_bar
    require('plotly.js/lib/heatmap'),    // px.imshow
    require('plotly.js/lib/choropleth'), // px.choropleth, the portfolio's world map
]);

window.Plotly = Plotly;
