"""Charts as SVG made on the server (pygal), each placed in the page as an <img> of a data: URL: an SVG
image keeps its own <style> and runs no script, so the page's Content-Security-Policy (no inline style
or script) does not break it, and nothing is fetched from outside."""

from __future__ import annotations

import base64
import html
from typing import Any

import pygal
from pygal.style import Style

_STYLE = Style(background="white", plot_background="white", font_family="sans-serif",
               colors=("#1f6fb2", "#e07b00", "#2a9d3a", "#b23a48", "#6a4c93"))


def _config(title: str) -> pygal.Config:
    config = pygal.Config()
    config.title = title
    config.style = _STYLE
    config.js = []  # pygal's tooltips load a script from a CDN by default (and an image runs none anyway)
    config.disable_xml_declaration = True
    config.width, config.height = 640, 300
    config.show_legend = True
    config.legend_at_bottom = True
    return config


def _image(chart: Any, title: str) -> str:
    svg = chart.render(is_unicode=True).encode("utf-8")
    return (f'<img alt="{html.escape(title)}" width="640" height="300" '
            f'src="data:image/svg+xml;base64,{base64.b64encode(svg).decode("ascii")}">')


def operator_bars(title: str, medians: dict[str, float | None], unit: str) -> str:
    """A bar per operator of its median value."""
    chart = pygal.Bar(_config(title))
    for op, value in medians.items():
        chart.add(op, [value or 0], formatter=lambda v: f"{v:.1f} {unit}")
    return _image(chart, title)


def daily_samples(title: str, days: list[int], per_operator: dict[str, list[int]]) -> str:
    """Stacked bars of samples per day of the month, one colour per operator."""
    chart = pygal.StackedBar(_config(title))
    chart.x_labels = [str(d) for d in days]
    for op, counts in per_operator.items():
        chart.add(op, counts)
    return _image(chart, title)


def operator_spread(title: str, values: dict[str, list[float]]) -> str:
    """A box per operator: quartiles of its samples, whiskers at the lowest and highest."""
    chart = pygal.Box(_config(title))
    for op, vals in values.items():
        chart.add(op, vals)
    return _image(chart, title)
