// Hand-drawn SVG charts: a multi-series line chart over time and a bar histogram.
// Everything is built with createElementNS and textContent: no markup from data.

const SVG = "http://www.w3.org/2000/svg";

function node(name, attrs = {}, text = null) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== null) el.textContent = text;
  return el;
}

function niceMax(value) {
  if (value <= 4) return 4;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}

function clock(seconds) {
  const d = new Date(seconds * 1000);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

/**
 * Lines of `series` ([{name, colour, points: [[t, y], ...]}]) over a shared time axis.
 */
export function lineChart(container, series, { width = 900, height = 220 } = {}) {
  const pad = { left: 44, right: 12, top: 10, bottom: 22 };
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" });
  const all = series.flatMap((s) => s.points);
  if (all.length < 2) {
    svg.append(node("text", { x: pad.left, y: height / 2, class: "tick" }, "no history yet"));
    container.replaceChildren(svg);
    return;
  }
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  const top = niceMax(Math.max(...all.map((p) => p[1])));
  const x = (t) => pad.left + ((t - t0) / Math.max(1, t1 - t0)) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
  for (let i = 0; i <= 4; i += 1) {
    const v = (top * i) / 4;
    svg.append(node("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "axis" }));
    svg.append(node("text", { x: pad.left - 6, y: y(v) + 3, "text-anchor": "end", class: "tick" }, String(Math.round(v))));
  }
  for (let i = 0; i <= 4; i += 1) {
    const t = t0 + ((t1 - t0) * i) / 4;
    const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
    svg.append(node("text", { x: x(t), y: height - 6, "text-anchor": anchor, class: "tick" }, clock(t)));
  }
  for (const s of series) {
    if (!s.points.length) continue;
    // A step line: a count holds until the next change.
    let d = `M${x(s.points[0][0]).toFixed(1)},${y(s.points[0][1]).toFixed(1)}`;
    for (const [t, v] of s.points.slice(1)) d += `H${x(t).toFixed(1)}V${y(v).toFixed(1)}`;
    svg.append(node("path", { d, fill: "none", stroke: s.colour, "stroke-width": 1.6, "vector-effect": "non-scaling-stroke" }));
  }
  container.replaceChildren(svg);
}

/**
 * Vertical bars of `bins` ([{label, value, colour}]).
 */
export function barChart(container, bins, { width = 440, height = 200 } = {}) {
  const pad = { left: 36, right: 6, top: 12, bottom: 30 };
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}` });
  const top = niceMax(Math.max(1, ...bins.map((b) => b.value)));
  const slot = (width - pad.left - pad.right) / Math.max(1, bins.length);
  const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
  for (let i = 0; i <= 2; i += 1) {
    const v = (top * i) / 2;
    svg.append(node("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "axis" }));
    svg.append(node("text", { x: pad.left - 5, y: y(v) + 3, "text-anchor": "end", class: "tick" }, String(Math.round(v))));
  }
  bins.forEach((bin, i) => {
    const x = pad.left + i * slot;
    const h = y(0) - y(bin.value);
    const bar = node("rect", { x: x + slot * 0.15, y: y(bin.value), width: slot * 0.7, height: Math.max(0, h), fill: bin.colour, opacity: 0.85 });
    bar.append(node("title", {}, `${bin.label}: ${bin.value}`));
    svg.append(bar);
    svg.append(node("text", { x: x + slot / 2, y: height - 16, "text-anchor": "middle", class: "tick" }, bin.label));
    if (bin.value) {
      svg.append(node("text", { x: x + slot / 2, y: y(bin.value) - 3, "text-anchor": "middle", class: "tick" }, String(bin.value)));
    }
  });
  container.replaceChildren(svg);
}
