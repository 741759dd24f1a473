"""Small static SVG charts for the dataset report, drawn in Python.

Server-side SVG needs no JavaScript bundle (the page stays small enough to email and the
charts show with JavaScript off), scales with the page, prints, and every mark carries a
``<title>`` tooltip with its exact figure. Colours are the Okabe-Ito palette (safe for the
common colour-vision deficiencies) and a single-hue blue ramp for the heatmap, whose cells
also print their value, so no figure is told by colour alone.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["PALETTE", "color_map", "stacked_bars", "bars", "boxplots", "heatmap", "fmt"]

#: Okabe & Ito (2008), "Color Universal Design": distinguishable with protanopia,
#: deuteranopia and tritanopia. Yellow (#F0E442) is last: it is weak on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
#: fixed colours for the three builder methods, so every chart agrees
METHOD_COLORS = {"template": "#0072B2", "synthetic": "#E69F00", "rag": "#009E73"}

WIDTH = 980
ROW = 22
BAR = 14
FONT = 12
CHAR = 7.2  # mean advance of a 12px sans-serif character (DejaVu Sans is wide), for layout


def fmt(v: Any) -> str:
    """Numbers with thousands separators; floats to at most 4 significant decimals."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(v)


def _short(v: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            s = f"{v / div:.1f}".rstrip("0").rstrip(".")
            return s + suffix
    return f"{v:g}"


def color_map(keys: Sequence[str], fixed: Mapping[str, str] | None = None) -> dict[str, str]:
    """A stable colour per key: the fixed ones first, then the palette in order."""
    fixed = dict(fixed or {})
    free = [c for c in PALETTE if c not in fixed.values()]
    out, i = {}, 0
    for k in keys:
        if k in fixed:
            out[k] = fixed[k]
        else:
            out[k] = free[i % len(free)]
            i += 1
    return out


def nice_ticks(vmax: float, n: int = 5, integer: bool = True) -> list[float]:
    """0 and round steps (1, 2, 2.5, 5 x 10^k; whole numbers for counts) up to ``vmax``."""
    if vmax <= 0:
        return [0, 1]
    raw = vmax / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1, round(step)) if step >= 1 or vmax >= 1 else step
    ticks = [0.0]
    while ticks[-1] < vmax - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _label_width(labels: Sequence[str], cap: int = 300) -> float:
    return min(cap, max((len(s) for s in labels), default=4) * CHAR + 20)


def _svg(width: float, height: float, title: str, body: list[str], desc: str = "") -> str:
    uid = "c" + hashlib.sha1(f"{title}|{len(body)}|{height}".encode()).hexdigest()[:8]
    d = f'<desc id="{uid}d">{escape(desc)}</desc>' if desc else ""
    lab = f"{uid}t {uid}d" if desc else f"{uid}t"
    return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
            f'width="{width:.0f}" style="max-width:100%;height:auto" role="img" aria-labelledby="{lab}" '
            f'font-size="{FONT}" font-family="system-ui,-apple-system,Segoe UI,Roboto,sans-serif">'
            f'<title id="{uid}t">{escape(title)}</title>{d}' + "".join(body) + "</svg>")


def _text(x: float, y: float, s: str, anchor: str = "start", cls: str = "", extra: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" dominant-baseline="middle"{c}{extra}>'
            f'{escape(s)}</text>')


def _legend(items: Sequence[tuple[str, str]], x0: float, y: float, width: float) -> tuple[list[str], float]:
    """Swatches left to right, wrapping; returns the marks and the height used."""
    out, x, line = [], x0, 0
    for label, color in items:
        w = 18 + len(label) * CHAR + 16
        if x + w > width and x > x0:
            x, line = x0, line + 1
        yy = y + line * 18
        out.append(f'<rect x="{x:.1f}" y="{yy - 6:.1f}" width="12" height="12" fill="{color}" rx="2"/>')
        out.append(_text(x + 17, yy, label))
        x += w
    return out, (line + 1) * 18


def _axis(x0: float, x1: float, y_top: float, y_bottom: float, ticks: list[float], vmax: float) -> list[str]:
    out = []
    for t in ticks:
        x = x0 + (x1 - x0) * t / vmax
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y_top:.1f}" y2="{y_bottom:.1f}" class="grid"/>')
        out.append(_text(x, y_bottom + 10, _short(t), "middle", "tick"))
    return out


def stacked_bars(rows: Sequence[tuple[str, Mapping[str, int]]], segments: Sequence[str],
                 colors: Mapping[str, str], title: str, unit: str = "records") -> str:
    """One horizontal bar per row, split into ``segments``; the total is printed at the end."""
    labels = [r[0] for r in rows]
    lw = _label_width(labels)
    totals = [sum(v.get(s, 0) for s in segments) for _, v in rows]
    vmax = max(totals, default=0) or 1
    ticks = nice_ticks(vmax)
    vmax = ticks[-1]
    legend, lh = _legend([(s, colors[s]) for s in segments], lw, 10, WIDTH)
    top = 10 + lh + 4
    x0, x1 = lw, WIDTH - 56
    body = list(legend)
    height = top + len(rows) * ROW + 24
    body += _axis(x0, x1, top, top + len(rows) * ROW, ticks, vmax)
    for i, ((label, vals), total) in enumerate(zip(rows, totals)):
        y = top + i * ROW + (ROW - BAR) / 2
        body.append(_text(x0 - 8, y + BAR / 2, label, "end"))
        x = x0
        for s in segments:
            v = vals.get(s, 0)
            if not v:
                continue
            w = (x1 - x0) * v / vmax
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.8):.1f}" height="{BAR}" '
                        f'fill="{colors[s]}"><title>{escape(label)} · {escape(s)}: {fmt(v)} {unit}</title></rect>')
            x += w
        body.append(_text(x + 5, y + BAR / 2, fmt(total), "start", "value"))
    return _svg(WIDTH, height, title, body, f"{title}; a table with the figures follows the chart.")


def bars(rows: Sequence[tuple[str, float | None, str | None]], title: str, unit: str = "records",
         legend: Sequence[tuple[str, str]] = (), value_fmt=fmt) -> str:
    """Horizontal bars: (label, value, colour) per row; a row whose value is None is a group
    heading (bold, across the label column); a legend when colours mean groups."""
    lw = _label_width([r[0] for r in rows if r[1] is not None], cap=420)
    vmax = max((r[1] for r in rows if r[1] is not None), default=0) or 1
    ticks = nice_ticks(vmax)
    vmax = ticks[-1]
    body: list[str] = []
    top = 6
    if legend:
        marks, lh = _legend(legend, lw, 10, WIDTH)
        body += marks
        top = 10 + lh + 4
    x0, x1 = lw, WIDTH - 64
    height = top + len(rows) * ROW + 24
    body += _axis(x0, x1, top, top + len(rows) * ROW, ticks, vmax)
    for i, (label, v, color) in enumerate(rows):
        y = top + i * ROW + (ROW - BAR) / 2
        if v is None:
            body.append(_text(4, y + BAR / 2, label, "start", "strong"))
            continue
        w = (x1 - x0) * v / vmax
        body.append(_text(x0 - 8, y + BAR / 2, label, "end"))
        body.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(w, 0.8 if v else 0):.1f}" height="{BAR}" '
                    f'fill="{color}"><title>{escape(label)}: {value_fmt(v)} {unit}</title></rect>')
        body.append(_text(x0 + w + 5, y + BAR / 2, value_fmt(v), "start", "value"))
    return _svg(WIDTH, height, title, body, f"{title}; a table with the figures follows the chart.")


def boxplots(panels: Sequence[tuple[str, Mapping[str, Mapping[str, float]]]], rows: Sequence[str],
             title: str, color: str = PALETTE[0]) -> str:
    """Small multiples: one panel per field, one box per row (p25-p75 box, median line,
    whiskers p5-p95); each panel has its own scale."""
    lw = _label_width(rows, cap=260)
    gap = 40
    pw = (WIDTH - lw - gap * (len(panels) - 1) - 8) / max(len(panels), 1)
    top = 26
    height = top + len(rows) * ROW + 26
    body: list[str] = []
    for i, label in enumerate(rows):
        y = top + i * ROW + ROW / 2
        body.append(_text(lw - 8, y, label, "end"))
    for p, (name, qs) in enumerate(panels):
        x0 = lw + p * (pw + gap)
        x1 = x0 + pw - 10
        body.append(_text((x0 + x1) / 2, 10, name, "middle", "panel"))
        vmax = max((q.get("p95", 0) for q in qs.values()), default=0) or 1
        ticks = nice_ticks(vmax, 3)
        vmax = ticks[-1]
        body += _axis(x0, x1, top, top + len(rows) * ROW, ticks, vmax)
        sx = lambda v: x0 + (x1 - x0) * min(v, vmax) / vmax  # noqa: E731
        for i, label in enumerate(rows):
            q = qs.get(label)
            if not q or not q.get("n"):
                continue
            y = top + i * ROW + ROW / 2
            tip = (f"{label} · {name}: median {fmt(q['p50'])} tokens; middle half {fmt(q['p25'])}–"
                   f"{fmt(q['p75'])}; 5–95% {fmt(q['p5'])}–{fmt(q['p95'])}; max {fmt(q['max'])}; "
                   f"{fmt(q['n'])} records")
            body.append(f'<g><title>{escape(tip)}</title>'
                        f'<line x1="{sx(q["p5"]):.1f}" x2="{sx(q["p95"]):.1f}" y1="{y:.1f}" y2="{y:.1f}" class="whisker"/>'
                        f'<line x1="{sx(q["p5"]):.1f}" x2="{sx(q["p5"]):.1f}" y1="{y - 4:.1f}" y2="{y + 4:.1f}" class="whisker"/>'
                        f'<line x1="{sx(q["p95"]):.1f}" x2="{sx(q["p95"]):.1f}" y1="{y - 4:.1f}" y2="{y + 4:.1f}" class="whisker"/>'
                        f'<rect x="{sx(q["p25"]):.1f}" y="{y - BAR / 2:.1f}" width="{max(sx(q["p75"]) - sx(q["p25"]), 1.5):.1f}" '
                        f'height="{BAR}" fill="{color}" fill-opacity="0.35" stroke="{color}"/>'
                        f'<line x1="{sx(q["p50"]):.1f}" x2="{sx(q["p50"]):.1f}" y1="{y - BAR / 2:.1f}" '
                        f'y2="{y + BAR / 2:.1f}" stroke="#000" stroke-width="2"/></g>')
    return _svg(WIDTH, height, title, body,
                f"{title}: box from the 25th to the 75th percentile, black line at the median, "
                "whiskers from the 5th to the 95th percentile; a table follows the chart.")


def _blue(share: float) -> str:
    """A sequential single-hue ramp (light to dark blue): readable in greyscale too."""
    lo, hi = (247, 251, 255), (8, 48, 107)
    t = max(0.0, min(1.0, share)) ** 0.6  # low shares stay distinguishable from zero
    r, g, b = (round(a + (c - a) * t) for a, c in zip(lo, hi))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(rows: Sequence[tuple[str, int, Sequence[int]]], columns: Sequence[tuple[str, str]],
            title: str) -> str:
    """Rows (label, records, counts per column); columns (category, group). Each cell is the
    share of the row's records that mention the group, printed, with the count in its tooltip."""
    lw = _label_width([r[0] for r in rows] + ["records"], cap=300)
    cw, ch = 46, 24
    head = 96
    rec_w = 60
    x0 = lw + rec_w
    width = x0 + cw * len(columns) + 40
    height = head + ch * len(rows) + 8
    body: list[str] = []
    # category spans above the rotated group names
    cats: list[tuple[str, int, int]] = []
    for j, (cat, _) in enumerate(columns):
        if cats and cats[-1][0] == cat:
            cats[-1] = (cat, cats[-1][1], j)
        else:
            cats.append((cat, j, j))
    for cat, a, b in cats:
        xa, xb = x0 + a * cw + 2, x0 + (b + 1) * cw - 2
        body.append(f'<line x1="{xa:.1f}" x2="{xb:.1f}" y1="14" y2="14" class="axis"/>')
        body.append(_text((xa + xb) / 2, 6, cat.replace("_", " "), "middle", "panel"))
    for j, (_, group) in enumerate(columns):
        x = x0 + j * cw + cw / 2
        body.append(f'<text x="{x:.1f}" y="{head - 6}" transform="rotate(-45 {x:.1f} {head - 6})" '
                    f'text-anchor="start" class="tick">{escape(group.replace("_", " "))}</text>')
    body.append(_text(lw + rec_w - 8, head - 8, "records", "end", "tick"))
    for i, (label, n, counts) in enumerate(rows):
        y = head + i * ch
        body.append(_text(lw - 8, y + ch / 2, label, "end", "strong" if i == 0 else ""))
        body.append(_text(lw + rec_w - 8, y + ch / 2, fmt(n), "end", "value"))
        for j, k in enumerate(counts):
            share = k / n if n else 0.0
            fill = _blue(share)
            ink = "inv" if share ** 0.6 > 0.45 else "ink"
            cat, group = columns[j]
            x = x0 + j * cw
            body.append(f'<g><title>{escape(label)} · {escape(group)}: {fmt(k)} of {fmt(n)} records '
                        f'({100 * share:.1f}%)</title><rect x="{x + 1:.1f}" y="{y + 1:.1f}" width="{cw - 2}" '
                        f'height="{ch - 2}" fill="{fill}" class="cell"/>'
                        f'<text x="{x + cw / 2:.1f}" y="{y + ch / 2:.1f}" text-anchor="middle" '
                        f'dominant-baseline="middle" class="{ink}" font-size="11">{100 * share:.0f}%</text></g>')
    return _svg(width, height, title, body,
                f"{title}: each cell is the share of the row's records that mention the group; "
                "a table with the counts follows the chart.")
