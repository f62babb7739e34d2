"""The timeline picture of a chaos run, as a standalone SVG (no dependencies).

Top: one row per node with its faults as coloured bands (kill, pause, restart, partition; a
permanent kill runs to the right edge), deaths declared by other nodes as ticks (black: the node
was faulted; grey: declared by a faulted observer; red: false), self-crashes as ✖. A dashed line
marks the end of the load, where every fault is healed. Bottom: acknowledged jobs in flight (acknowledged, not yet terminal) as a line, and
completions per second as bars, over the same time axis.
"""

from xml.sax.saxutils import escape

COLOURS = {"kill": "#d62728", "pause": "#ff7f0e", "restart": "#9467bd", "partition": "#1f77b4"}
W, LEFT, RIGHT, ROW, TOP, CHART = 1000, 60, 20, 20, 40, 180


def terminal_time(rec):
    ends = [h["at"] for h in rec.get("history", [])
            if h.get("state") in ("succeeded", "failed", "cancelled")]
    return (max(ends) if ends else rec.get("updated_at", 0)) / 1000.0


def draw(path, title, t0, t_end, t_load_end, node_names, windows, acks, records, deaths,
         crashes):
    span = max(1.0, t_end - t0)
    plot_w = W - LEFT - RIGHT

    def x(t):
        return LEFT + plot_w * min(max(t - t0, 0.0), span) / span

    rows_h = ROW * len(node_names)
    chart_top = TOP + rows_h + 40
    height = chart_top + CHART + 50
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="11">' % (W, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="20" font-size="14">%s</text>' % (LEFT, escape(title))]
    row_of = {name: i for i, name in enumerate(node_names)}
    for name, i in row_of.items():
        y = TOP + i * ROW
        out.append('<text x="5" y="%d">%s</text>' % (y + 14, escape(name)))
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="#eee"/>'
                   % (LEFT, y + 2, plot_w, ROW - 4))
    for w in windows:
        y = TOP + row_of[w["node"]] * ROW
        end = t_end if w["end"] is None else w["end"]
        out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" opacity="0.85">'
                   '<title>%s %s</title></rect>'
                   % (x(w["start"]), y + 2, max(1.0, x(end) - x(w["start"])), ROW - 4,
                      COLOURS.get(w["kind"], "#777"), w["kind"], escape(w["node"])))
    tick = {"false": ("red", 3), "by_faulted": ("#999", 1)}
    for d in deaths:
        if d["member"] in row_of:
            y = TOP + row_of[d["member"]] * ROW
            colour, width = tick.get(d.get("class"), ("black", 1))
            out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" stroke-width="%d">'
                       '<title>%s declared %s dead</title></line>'
                       % (x(d["t"]), x(d["t"]), y + 2, y + ROW - 2, colour, width,
                          escape(d["observer"]), escape(d["member"])))
    for c in crashes:
        y = TOP + row_of[c["node"]] * ROW
        out.append('<text x="%.1f" y="%d" font-weight="bold">✖</text>' % (x(c["t"]), y + 14))
    legend_x = LEFT
    for kind, colour in COLOURS.items():
        out.append('<rect x="%d" y="%d" width="12" height="10" fill="%s"/>'
                   % (legend_x, TOP + rows_h + 8, colour))
        out.append('<text x="%d" y="%d">%s</text>' % (legend_x + 16, TOP + rows_h + 17, kind))
        legend_x += 90
    out.append('<text x="%d" y="%d">| death declared (grey: by a faulted node, red: false)'
               '</text>' % (legend_x, TOP + rows_h + 17))

    step = 0.5
    n = int(span / step) + 1
    in_flight, done = [0] * n, [0] * n
    for a in acks:
        rec = records.get(a["id"])
        end = terminal_time(rec) if rec and rec.get("state") in ("succeeded", "failed",
                                                                 "cancelled") else t_end
        for k in range(max(0, int((a["t_ack"] - t0) / step)), min(n, int((end - t0) / step) + 1)):
            in_flight[k] += 1
        if rec and end < t_end:
            k = int((end - t0) / step)
            if 0 <= k < n:
                done[k] += 1
    peak = max(1, max(in_flight), max(done) * 2)
    base = chart_top + CHART

    def y(v):
        return base - CHART * v / peak

    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>'
               % (LEFT, chart_top, plot_w, CHART))
    for k, c in enumerate(done):
        if c:
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#2ca02c" '
                       'opacity="0.6"/>' % (x(t0 + k * step), y(c * 2), max(1.0, plot_w * step /
                                                                             span), base - y(c * 2)))
    out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#999" stroke-dasharray="4 3">'
               '<title>load ends, faults healed</title></line>'
               % (x(t_load_end), x(t_load_end), TOP, base))
    pts = " ".join("%.1f,%.1f" % (x(t0 + k * step), y(v)) for k, v in enumerate(in_flight))
    out.append('<polyline points="%s" fill="none" stroke="black" stroke-width="1.5"/>' % pts)
    out.append('<text x="5" y="%d">%d</text>' % (chart_top + 10, peak))
    out.append('<text x="5" y="%d">0</text>' % base)
    for s in range(0, int(span) + 1, max(5, int(span / 10) // 5 * 5 or 5)):
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%ds</text>' % (x(t0 + s), base + 15,
                                                                               s))
    out.append('<text x="%d" y="%d">jobs in flight (line), completions per second (bars), '
               'seconds since the mesh was up</text>' % (LEFT, base + 32))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
