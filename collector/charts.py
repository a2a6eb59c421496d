"""Charts as SVG made on the server (pygal), each placed in the page as an <img> of a data: URL: an SVG
image keeps its own <style> and runs no script, so the page's Content-Security-Policy (no inline style
or script) does not break it, and nothing is fetched from outside.

Charts are drawn 600 px wide with large type, so that shrunk to a phone's width (about 380 px) their
labels stay readable; numbers on axes and values follow the page's language (Formats)."""

from __future__ import annotations

import base64
import html
import math
from typing import Any

import pygal
from pygal.style import Style

from xaprobe.collector.formats import Formats

WIDTH = 600
COLOURS = ("#1f6fb2", "#e07b00", "#2a9d3a", "#b23a48", "#6a4c93")
_STYLE = Style(background="white", plot_background="white", font_family="sans-serif", colors=COLOURS,
               title_font_size=20, label_font_size=16, major_label_font_size=16, legend_font_size=17,
               value_font_size=16, value_label_font_size=16, tooltip_font_size=16)
REFERENCE = "#9aa3ad"


def _config(title: str, height: int, f: Formats) -> pygal.Config:
    config = pygal.Config()
    config.title = title
    config.style = _STYLE
    config.js = []  # pygal's tooltips load a script from a CDN by default (and an image runs none anyway)
    config.disable_xml_declaration = True
    config.width, config.height = WIDTH, height
    config.show_legend = True
    config.legend_at_bottom = True
    config.legend_at_bottom_columns = 3
    config.truncate_legend = 30
    config.truncate_label = -1  # pygal cuts axis labels to a few letters by default ("1…" for 15)
    config.max_scale = 6  # few ticks: each stays readable shrunk to a phone's width
    config.value_formatter = lambda v: f.number(v, 0 if float(v).is_integer() else 1)
    return config


def _image(chart: Any, title: str, height: int) -> str:
    svg = chart.render(is_unicode=True).encode("utf-8")
    return (f'<img alt="{html.escape(title)}" width="{WIDTH}" height="{height}" '
            f'src="data:image/svg+xml;base64,{base64.b64encode(svg).decode("ascii")}">')


def operator_bars(title: str, medians: dict[str, float | None], unit: str, f: Formats,
                  reference: tuple[str, float] | None = None) -> str:
    """A horizontal bar per operator of its median value, its value written at its end, the chart as tall
    as there are bars (one operator is one bar of normal thickness, not a wall); reference, when given, is
    a grey bar to compare with (the threshold)."""
    bars = len(medians) + (reference is not None)
    height = 150 + 56 * bars
    config = _config(title, height, f)
    config.print_values = True
    config.print_values_position = "top"
    config.show_legend = False
    config.show_x_labels = False  # the value is written on each bar: no crowded value axis (x is the value axis here)
    config.range = (0, max([v or 0 for v in medians.values()] + [reference[1] if reference else 0]) * 1.15 or 1)
    config.value_formatter = lambda v: f"{f.number(v, 1)} {unit}"
    config.x_value_formatter = config.value_formatter
    chart = pygal.HorizontalBar(config)
    names = list(medians) + ([f"{reference[0]} {f.number(reference[1], 1)} {unit}"] if reference else [])
    chart.x_labels = list(reversed(names))
    values: list[Any] = [{"value": v or 0, "color": COLOURS[i % len(COLOURS)]} for i, v in enumerate(medians.values())]
    if reference:
        values.append({"value": reference[1], "color": REFERENCE, "formatter": lambda v: ""})  # named on the axis
    chart.add(title, list(reversed(values)))
    return _image(chart, title, height)


def integer_ticks(highest: int, most: int = 6) -> list[int]:
    """Whole-number axis ticks from 0 past highest, at most about `most` of them, at a step of 1, 2, 5, 10..."""
    step = 1
    while math.ceil(max(highest, 1) / step) > most:
        step = next(s * 10 ** e for e in range(0, 9) for s in (1, 2, 5) if s * 10 ** e > step)
    return list(range(0, step * (math.ceil(max(highest, 1) / step)) + 1, step))


def daily_samples(title: str, days: list[int], per_operator: dict[str, list[int]], f: Formats) -> str:
    """Stacked bars of samples per day of the month, one colour per operator; whole-number ticks only, a day
    label every 5 days."""
    height = 340
    config = _config(title, height, f)
    totals = [sum(counts[i] for counts in per_operator.values()) for i in range(len(days))]
    config.y_labels = integer_ticks(max(totals, default=0))
    config.value_formatter = lambda v: f.integer(v)
    config.show_minor_x_labels = False
    config.x_labels_major = [str(d) for d in days if d == 1 or d % 5 == 0]
    chart = pygal.StackedBar(config)
    chart.x_labels = [str(d) for d in days]
    for op, counts in per_operator.items():
        chart.add(op, counts)
    return _image(chart, title, height)


def operator_spread(title: str, values: dict[str, list[float]], f: Formats) -> str:
    """A box per operator: quartiles of its samples, whiskers at the lowest and highest."""
    height = 340
    chart = pygal.Box(_config(title, height, f))
    for op, vals in values.items():
        chart.add(op, vals)
    return _image(chart, title, height)


def history(title: str, months: list[str], per_operator: dict[str, list[float | None]], f: Formats,
            integers: bool = False) -> str:
    """A line per operator over the months (a month without figures leaves a gap)."""
    height = 340
    config = _config(title, height, f)
    if integers:
        config.y_labels = integer_ticks(int(max((v or 0 for vs in per_operator.values() for v in vs), default=0)))
        config.value_formatter = lambda v: f.integer(v)
    config.x_label_rotation = 0
    config.show_minor_x_labels = False
    labels = [f.short_month(m) for m in months]
    config.x_labels_major = labels[::3] if len(labels) > 6 else labels
    config.allow_interruptions = True
    chart = pygal.Line(config)
    chart.x_labels = labels
    for op, vals in per_operator.items():
        chart.add(op, vals)
    return _image(chart, title, height)
