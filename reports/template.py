"""The page around the sections: styles, the figure loader and the table sort.

plotly.js is embedded once, in the head; each figure is a ``<div>`` and its spec a
``<script type="application/json" data-figure=ID>`` block that the loader hands to
``Plotly.newPlot`` with the one modebar config. Nothing is fetched at view time.
"""

from __future__ import annotations

import jinja2

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0; color: #222; background: #fafafa; }
header.top { background: #1f2933; color: #fff; padding: 14px 28px; }
header.top h1 { margin: 0 0 4px 0; font-size: 22px; }
header.top p { margin: 0; color: #cbd2d9; font-size: 13px; }
nav { padding: 8px 28px; background: #e4e7eb; font-size: 13px; position: sticky; top: 0; z-index: 10; }
nav a { margin-right: 14px; color: #1f2933; text-decoration: none; }
nav a.skipped { color: #9aa5b1; }
main { padding: 0 28px 40px 28px; max-width: 1400px; }
section { background: #fff; border: 1px solid #e4e7eb; border-radius: 6px; margin: 18px 0; padding: 6px 18px 14px 18px; }
section h2 { font-size: 18px; margin: 12px 0 8px 0; }
section.skipped p.skip { color: #7b8794; font-style: italic; margin: 4px 0; }
.figure { width: 100%; min-height: 300px; }
p.caption { color: #52606d; font-size: 13px; margin: 2px 0 6px 0; }
ul.warnings li { color: #8a2c0d; }
ul.notes li { color: #52606d; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 4px 24px; font-size: 13px; }
.facts div span { color: #7b8794; }
div.table { overflow-x: auto; margin: 8px 0; }
table.data { border-collapse: collapse; font-size: 12px; }
table.data th, table.data td { border-bottom: 1px solid #e4e7eb; padding: 3px 8px; text-align: left; white-space: nowrap; }
table.data th { background: #f5f7fa; position: sticky; top: 0; }
table.sortable th { cursor: pointer; }
table.sortable th.asc::after { content: " \\25B2"; }
table.sortable th.desc::after { content: " \\25BC"; }
div.scroll { max-height: 600px; overflow: auto; }
pre { background: #f5f7fa; padding: 8px; font-size: 12px; overflow-x: auto; }
"""

# Renders every figure; a click on a header of a sortable table sorts its rows
# (numerically where both cells are numbers, else as text).
SCRIPT = """
(function () {
  const config = JSON.parse(document.getElementById('plotly-config').textContent);
  document.querySelectorAll('script[type="application/json"][data-figure]').forEach(function (el) {
    const spec = JSON.parse(el.textContent);
    Plotly.newPlot(el.dataset.figure, spec.data, spec.layout, config);
  });
  function value(cell) {
    const text = cell.textContent.trim().replace(/,/g, '');
    const n = parseFloat(text);
    return (text !== '' && !isNaN(n) && isFinite(text)) ? n : cell.textContent.trim();
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    table.querySelectorAll('thead th').forEach(function (th, col) {
      th.addEventListener('click', function () {
        const asc = !th.classList.contains('asc');
        table.querySelectorAll('thead th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
        th.classList.add(asc ? 'asc' : 'desc');
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        rows.sort(function (a, b) {
          const x = value(a.cells[col]), y = value(b.cells[col]);
          const c = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""

PAGE = jinja2.Environment(autoescape=True).from_string("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="arsenal-figures" content="{{ figure_count }}">
<title>{{ title }}</title>
<style>{{ style | safe }}</style>
<script type="text/javascript">{{ plotlyjs | safe }}</script>
</head>
<body>
<header class="top"><h1>{{ title }}</h1><p>{{ subtitle }}</p></header>
<nav>{% for s in sections %}<a href="#{{ s.id }}"{% if s.skipped %} class="skipped"{% endif %}>{{ s.title }}</a>{% endfor %}</nav>
<main>
{% for s in sections %}
<section id="{{ s.id }}"{% if s.skipped %} class="skipped"{% endif %}>
<h2>{{ s.title }}</h2>
{% if s.skipped %}<p class="skip">{{ s.skipped }}</p>{% endif %}
{% for b in s.blocks %}{% if b.id is defined %}
<div id="{{ b.id }}" class="figure"></div>
{% if b.caption %}<p class="caption">{{ b.caption }}</p>{% endif %}
<script type="application/json" data-figure="{{ b.id }}">{{ specs[b.id] | safe }}</script>
{% else %}{{ b | safe }}{% endif %}{% endfor %}
</section>
{% endfor %}
</main>
<script type="application/json" id="plotly-config">{{ config | safe }}</script>
<script type="text/javascript">{{ script | safe }}</script>
</body>
</html>
""")
