"""The dashboard's charts as small hand-written SVG, one function per chart kind.

Each function takes a panel's data and returns an <svg> with a viewBox and no fixed size, so
it scales to its column (1280 px or a 390 px phone) without overflowing; its text is real
text in the page's colour (currentColor, so dark mode works), and it carries a <title> and a
<desc> that says in words what the marks show, for screen readers. No chart library: the
five kinds below are a few lines of geometry each, and a library (matplotlib) would cost
tens of megabytes, a second of import and fixed-size pictures with text as paths.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

W = 480
FONT = 13
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 30, 34
COLOURS = ("#2c7fb8", "#e08214", "#7b3294", "#1b9e77")
REFERENCE = "#b2182b"
MAX_X_LABELS = 6


def _fmt(v: float | None, percent: bool = False) -> str:
    if v is None:
        return "none"
    if percent:
        return f"{v:.0%}" if abs(v * 100 - round(v * 100)) < 0.05 else f"{v:.1%}"
    if abs(v) >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def _tick(t: float, percent: bool = False) -> str:
    """An axis tick: the same style on every tick of an axis (0.5, 1, 1.5; 1,000)."""
    if percent:
        return f"{t:.0%}"
    return f"{t:,.0f}" if abs(t) >= 1000 else f"{t:g}"


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values from lo to at least hi."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    t = first
    while t < hi + step * 0.999:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _svg(key: str, title: str, desc: str, height: int, body: list[str]) -> Markup:
    t, d = f"chart-{key}-title", f"chart-{key}-desc"
    return Markup(
        f'<svg class="chart" id="chart-{escape(key)}" viewBox="0 0 {W} {height}" role="img" '
        f'aria-labelledby="{t} {d}" font-size="{FONT}" fill="currentColor" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{t}">{escape(title)}</title><desc id="{d}">{escape(desc)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, s: str, anchor: str = "start", cls: str = "", extra: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{c}{extra}>{escape(s)}</text>'


def _legend(items: list[tuple[str, str, bool]]) -> list[str]:
    """Swatches across the top: (name, colour, dashed line)."""
    out, x = [], LEFT
    for name, colour, dashed in items:
        if dashed:
            out.append(
                f'<line x1="{x}" y1="14" x2="{x + 16}" y2="14" stroke="{colour}" '
                'stroke-width="2" stroke-dasharray="4 3"/>'
            )
        else:
            out.append(f'<rect x="{x}" y="8" width="12" height="12" rx="2" fill="{colour}"/>')
        out.append(_text(x + 20, 18, name))
        x += 28 + 7 * len(name)
    return out


class _Scale:
    def __init__(self, lo: float, hi: float, a: float, b: float):
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v: float) -> float:
        span = (self.hi - self.lo) or 1
        return self.a + (v - self.lo) / span * (self.b - self.a)


def _y_axis(ticks: list[float], y: _Scale, percent: bool, label: str, height: int) -> list[str]:
    out = []
    for t in ticks:
        py = y(t)
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py:.1f}" y2="{py:.1f}" '
            'stroke="currentColor" stroke-opacity=".15"/>'
        )
        out.append(_text(LEFT - 6, py + 4, _tick(t, percent), "end"))
    mid = (TOP + height - BOTTOM) / 2
    out.append(_text(12, mid, label, "middle", extra=f' transform="rotate(-90 12 {mid:.1f})"'))
    return out


def _x_labels(
    labels: Sequence[str], xs: list[float], height: int, ticks: Sequence[str] | None = None
) -> list[str]:
    """Labels under the x axis: `ticks` where given ("" for none), else every few labels."""
    n = len(labels)
    if ticks is None:
        every = max(1, math.ceil(n / MAX_X_LABELS))
        ticks = [labels[i] if i % every == 0 else "" for i in range(n)]
    out = [
        f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{height - BOTTOM}" y2="{height - BOTTOM}" '
        'stroke="currentColor" stroke-opacity=".4"/>'
    ]
    for i, tick in enumerate(ticks):
        if tick:
            out.append(_text(xs[i], height - BOTTOM + 18, _short(tick, 12), "middle"))
    return out


def _x_positions(n: int) -> list[float]:
    width = W - LEFT - RIGHT
    return [LEFT + (i + 0.5) * width / max(n, 1) for i in range(n)]


def _range(values: list[float], data: dict) -> tuple[float, float]:
    lo = data.get("y_min")
    hi = data.get("y_max")
    lo = 0.0 if lo is None else lo
    if hi is None:
        # A flat line at zero still gets a readable axis (`y_span`: the least top it shows).
        hi = max(max([*values, lo]) * 1.15, lo + float(data.get("y_span") or 1.0))
    return lo, hi


def _series_summary(name: str, values: list, labels: Sequence[str], percent: bool) -> str:
    known = [(v, labels[i]) for i, v in enumerate(values) if v is not None]
    if not known:
        return f"{name}: no value."
    top = max(known, key=lambda vl: vl[0])
    return (
        f"{name}: {_fmt(known[0][0], percent)} at {known[0][1]}, "
        f"{_fmt(known[-1][0], percent)} at {known[-1][1]}, highest {_fmt(top[0], percent)} "
        f"at {top[1]}."
    )


def lines(key: str, title: str, data: dict) -> Markup:
    """Values over time buckets or model versions: one line per series, an optional shaded
    interval (`band`), a dashed reference line and a marked point (`highlight`)."""
    height = 240
    labels, series = data["x"], data["series"]
    percent = bool(data.get("percent"))
    band = data.get("band")
    ref = data.get("reference")
    every = [v for s in series for v in s["values"] if v is not None]
    if band:
        every += [v for v in band["upper"] if v is not None]
    if ref is not None:
        every.append(ref)
    lo, hi = _range(every, data)
    ticks = nice_ticks(lo, hi) if data.get("y_max") is None else nice_ticks(lo, hi, 4)
    y = _Scale(lo, ticks[-1] if data.get("y_max") is None else hi, height - BOTTOM, TOP)
    xs = _x_positions(len(labels))
    body = _y_axis(ticks, y, percent, data.get("y_label", ""), height)
    if band:
        spans = [
            (xs[i], y(lw), y(up))
            for i, (lw, up) in enumerate(zip(band["lower"], band["upper"], strict=True))
            if lw is not None and up is not None
        ]
        for x, y0, y1 in spans:
            half = max((W - LEFT - RIGHT) / max(len(labels), 1) * 0.3, 3)
            body.append(
                f'<rect class="band" x="{x - half:.1f}" y="{y1:.1f}" width="{2 * half:.1f}" '
                f'height="{max(y0 - y1, 1):.1f}" fill="{COLOURS[0]}" fill-opacity=".2"/>'
            )
    if ref is not None:
        body.append(
            f'<line class="reference" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(ref):.1f}" '
            f'y2="{y(ref):.1f}" stroke="{REFERENCE}" stroke-width="1.5" stroke-dasharray="5 4"/>'
        )
    highlight = data.get("highlight")
    if highlight is not None:
        x = xs[highlight]
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{height - BOTTOM}" '
            'stroke="currentColor" stroke-opacity=".35" stroke-dasharray="2 3"/>'
        )
        # Beside the line, just above the axis: the legend holds the top.
        body.append(_text(x + 4, height - BOTTOM - 6, data.get("highlight_label") or ""))
    for s_i, s in enumerate(series):
        colour = COLOURS[s_i % len(COLOURS)]
        runs: list[list[tuple[float, float]]] = [[]]
        for i, v in enumerate(s["values"]):
            if v is None:
                runs.append([])
            else:
                runs[-1].append((xs[i], y(v)))
        for run in runs:
            if len(run) > 1:
                pts = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
                body.append(
                    f'<polyline class="series" points="{pts}" fill="none" stroke="{colour}" '
                    'stroke-width="2.5" stroke-linejoin="round"/>'
                )
        for i, v in enumerate(s["values"]):
            if v is not None and (len(labels) <= 16 or len([r for r in runs if r]) > 1):
                body.append(
                    f'<circle cx="{xs[i]:.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}">'
                    f"<title>{escape(labels[i])}: {_fmt(v, percent)}</title></circle>"
                )
    body += _x_labels(labels, xs, height, data.get("x_ticks"))
    legend = [(s["name"], COLOURS[i % len(COLOURS)], False) for i, s in enumerate(series)]
    if ref is not None and data.get("reference_label"):
        legend.append((data["reference_label"], REFERENCE, True))
    body += _legend(legend)
    desc = " ".join(_series_summary(s["name"], s["values"], labels, percent) for s in series)
    if ref is not None:
        desc += f" Dashed line: {data.get('reference_label') or 'reference'} {_fmt(ref, percent)}."
    return _svg(key, title, desc, height, body)


def columns(key: str, title: str, data: dict) -> Markup:
    """Counts per time bucket as columns, series stacked on each other."""
    height = 240
    labels, series = data["x"], data["series"]
    totals = [sum(s["values"][i] or 0 for s in series) for i in range(len(labels))]
    ticks = nice_ticks(0, max([*totals, 1]))
    y = _Scale(0, ticks[-1], height - BOTTOM, TOP)
    xs = _x_positions(len(labels))
    width = (W - LEFT - RIGHT) / max(len(labels), 1) * 0.75
    body = _y_axis(ticks, y, False, data.get("y_label", ""), height)
    base = [0.0] * len(labels)
    for s_i, s in enumerate(series):
        colour = COLOURS[s_i % len(COLOURS)]
        for i, v in enumerate(s["values"]):
            if not v:
                continue
            top, bottom = y(base[i] + v), y(base[i])
            body.append(
                f'<rect class="column" x="{xs[i] - width / 2:.1f}" y="{top:.1f}" '
                f'width="{width:.1f}" height="{max(bottom - top, 0.5):.1f}" fill="{colour}">'
                f"<title>{escape(labels[i])}: {v} {escape(s['name'])}</title></rect>"
            )
            base[i] += v
    body += _x_labels(labels, xs, height, data.get("x_ticks"))
    body += _legend([(s["name"], COLOURS[i % len(COLOURS)], False) for i, s in enumerate(series)])
    desc = " ".join(_series_summary(s["name"], s["values"], labels, False) for s in series)
    return _svg(key, title, desc, height, body)


def bars(key: str, title: str, data: dict) -> Markup:
    """One horizontal bar per name (reviewer, feature), with optional threshold lines."""
    rows = data["rows"]
    row_h = 24
    left = 140
    height = TOP + max(len(rows), 1) * row_h + BOTTOM
    thresholds = data.get("thresholds") or []
    top_value = max([r["value"] for r in rows] + [t["value"] * 1.2 for t in thresholds] + [1e-9])
    ticks = nice_ticks(0, top_value)
    x = _Scale(0, ticks[-1], left, W - RIGHT - 34)
    body = []
    for t in ticks:
        px = x(t)
        body.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{height - BOTTOM}" '
            'stroke="currentColor" stroke-opacity=".15"/>'
        )
        body.append(_text(px, height - BOTTOM + 16, _fmt(t), "middle"))
    body.append(_text((left + W - RIGHT) / 2, height - 4, data.get("x_label", ""), "middle"))
    for i, r in enumerate(rows):
        py = TOP + i * row_h
        body.append(_text(left - 6, py + row_h / 2 + 4, _short(str(r["name"]), 17), "end"))
        end = x(r["value"])
        body.append(
            f'<rect class="bar" x="{left}" y="{py + 4}" width="{max(end - left, 1):.1f}" '
            f'height="{row_h - 8}" fill="{COLOURS[0]}"><title>{escape(str(r["name"]))}: '
            f"{_fmt(r['value'])}</title></rect>"
        )
        body.append(_text(end + 4, py + row_h / 2 + 4, _fmt(r["value"])))
    for t_i, t in enumerate(thresholds):
        px = x(t["value"])
        body.append(
            f'<line class="reference" x1="{px:.1f}" x2="{px:.1f}" y1="{TOP - 4}" '
            f'y2="{height - BOTTOM}" stroke="{REFERENCE}" stroke-width="1.5" '
            f'stroke-opacity="{0.55 if t_i == 0 else 1}" stroke-dasharray="5 4"/>'
        )
        body.append(_text(px, TOP - 8 - 0 * t_i, t["label"], "middle" if t_i else "end"))
    desc = "; ".join(f"{r['name']}: {_fmt(r['value'])}" for r in rows) or "No bar."
    return _svg(key, title, desc + ".", height, body)


def reliability(key: str, title: str, data: dict) -> Markup:
    """The reliability diagram: per score bin, how often the model's answer was right (y)
    against its mean score (x); dot area follows the number of items; the diagonal is a
    model whose scores mean what they say."""
    height = 300
    bins = data["bins"]
    x = _Scale(0, 1, LEFT, W - RIGHT - 14)  # room for the "100%" under the axis's end
    y = _Scale(0, 1, height - BOTTOM, TOP)
    ticks = [0, 0.25, 0.5, 0.75, 1]
    body = _y_axis(ticks, y, True, "how often right", height)
    for t in ticks:
        body.append(_text(x(t), height - BOTTOM + 16, f"{t:.0%}", "middle"))
    body.append(_text((LEFT + W - RIGHT) / 2, height - 4, "model's top score", "middle"))
    body.append(
        f'<line class="reference" x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(1):.1f}" '
        f'y2="{y(1):.1f}" stroke="currentColor" stroke-opacity=".5" stroke-dasharray="5 4"/>'
    )
    biggest = max([b["n"] for b in bins] + [1])
    points = []
    for b in bins:
        cx, cy = x(b["mean_score"]), y(b["observed"])
        points.append(f"{cx:.1f},{cy:.1f}")
        r = 3 + 9 * math.sqrt(b["n"] / biggest)
        body.append(
            f'<circle class="bin" cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" fill="{COLOURS[0]}" '
            f'fill-opacity=".75"><title>scores {b["lower"]:.0%}–{b["upper"]:.0%}: right '
            f"{b['observed']:.0%} of {b['n']}</title></circle>"
        )
        body.append(_text(cx, cy - r - 3, f"n={b['n']}", "middle"))
    if len(points) > 1:
        body.insert(
            len(body) - 2 * len(bins),
            f'<polyline points="{" ".join(points)}" fill="none" stroke="{COLOURS[0]}" '
            'stroke-width="1.5"/>',
        )
    # Bottom right, under the diagonal, where no bin of a sane model lands.
    body += [
        f'<line x1="{W - 196}" y1="{height - BOTTOM - 14}" x2="{W - 180}" '
        f'y2="{height - BOTTOM - 14}" stroke="currentColor" stroke-dasharray="4 3"/>',
        _text(W - 176, height - BOTTOM - 10, "perfectly calibrated"),
    ]
    desc = (
        "; ".join(
            f"scores {b['lower']:.0%} to {b['upper']:.0%}: right {b['observed']:.0%} of "
            f"{b['n']} times (mean score {b['mean_score']:.0%})"
            for b in bins
        )
        or "No bin."
    )
    return _svg(key, title, desc + ".", height, body)


def intervals(key: str, title: str, data: dict) -> Markup:
    """A figure with its interval per name (reviewer or pair): a dot for the estimate, a
    whisker from lower to upper, the number of items behind it at the right."""
    rows = data["rows"]
    row_h = 26
    left = 140
    height = TOP + max(len(rows), 1) * row_h + BOTTOM
    lo = data.get("x_min", 0.0)
    hi = data.get("x_max", 1.0)
    inner = _Scale(lo, hi, left, W - RIGHT - 48)

    def x(v: float) -> float:  # a figure beyond the axis (a negative kappa) sits at its edge
        return inner(min(max(v, lo), hi))

    body = []
    for t in nice_ticks(lo, hi):
        if t > hi + 1e-9:
            continue
        px = x(t)
        body.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{height - BOTTOM}" '
            'stroke="currentColor" stroke-opacity=".15"/>'
        )
        body.append(_text(px, height - BOTTOM + 16, _fmt(t), "middle"))
    body.append(_text((left + W - RIGHT) / 2, height - 4, data.get("x_label", ""), "middle"))
    ref = data.get("reference")
    if ref is not None:
        body.append(
            f'<line class="reference" x1="{x(ref):.1f}" x2="{x(ref):.1f}" y1="{TOP - 4}" '
            f'y2="{height - BOTTOM}" stroke="{REFERENCE}" stroke-dasharray="5 4"/>'
        )
    for i, r in enumerate(rows):
        cy = TOP + i * row_h + row_h / 2
        body.append(_text(left - 6, cy + 4, _short(str(r["name"]), 17), "end"))
        body.append(_text(W - RIGHT, cy + 4, f"n={r.get('n', 0)}", "end"))
        if r.get("estimate") is None:
            body.append(_text(left + 4, cy + 4, "not measured yet"))
            continue
        if r.get("lower") is not None and r.get("upper") is not None:
            body.append(
                f'<line class="whisker" x1="{x(r["lower"]):.1f}" x2="{x(r["upper"]):.1f}" '
                f'y1="{cy:.1f}" y2="{cy:.1f}" stroke="{COLOURS[0]}" stroke-width="2.5"/>'
            )
        body.append(
            f'<circle class="estimate" cx="{x(r["estimate"]):.1f}" cy="{cy:.1f}" r="5" '
            f'fill="{COLOURS[0]}"><title>{escape(str(r["name"]))}: {_fmt(r["estimate"])}'
            f"</title></circle>"
        )
    desc = (
        "; ".join(
            f"{r['name']}: {_fmt(r.get('estimate'))} (from {_fmt(r.get('lower'))} to "
            f"{_fmt(r.get('upper'))}, n={r.get('n', 0)})"
            for r in rows
        )
        or "No row."
    )
    return _svg(key, title, desc + ".", height, body)


def empty(key: str, title: str, message: str) -> Markup:
    """A quiet frame saying there is nothing to draw (the caption says why)."""
    height = 120
    body = [
        f'<rect x="1" y="1" width="{W - 2}" height="{height - 2}" rx="6" fill="none" '
        'stroke="currentColor" stroke-opacity=".2" stroke-dasharray="6 4"/>',
        _text(W / 2, height / 2 + 5, message, "middle"),
    ]
    return _svg(key, title, message, height, body)


CHARTS: dict[str, Callable[[str, str, dict], Markup]] = {
    "lines": lines,
    "columns": columns,
    "bars": bars,
    "reliability": reliability,
    "intervals": intervals,
}


def render(panel: dict) -> Markup:
    """The SVG of one dashboard panel ({"key", "title", "chart", "data", "empty"})."""
    if panel.get("empty"):
        return empty(panel["key"], panel["title"], "Nothing to draw yet")
    return CHARTS[panel["chart"]](panel["key"], panel["title"], panel["data"])
