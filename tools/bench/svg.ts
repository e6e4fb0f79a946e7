// Two small SVG charts for BENCHMARKS.md: horizontal bars (wire cost per client) and lines on a
// log-scale x axis (the fleet curve). Written by hand: a few dozen lines of markup, where a charting
// library would bring a DOM or a browser to the bench.
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const FONT = `font-family="sans-serif" font-size="12"`;
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

export interface Bar {
  label: string;
  value: number;
  /** Bars in the same group share a colour (a credential kind, say). */
  group?: string;
}

export function barChart(title: string, unit: string, bars: Bar[]): string {
  const labelW = 330;
  const plotW = 380;
  const rowH = 22;
  const top = 40;
  const groups = [...new Set(bars.map((b) => b.group ?? ""))];
  const height = top + bars.length * rowH + 30 + (groups.length > 1 ? 20 : 0);
  const max = Math.max(1, ...bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)));
  const rows = bars.map((b, i) => {
    const y = top + i * rowH;
    const w = Number.isFinite(b.value) ? (plotW * b.value) / max : 0;
    const color = COLORS[groups.indexOf(b.group ?? "") % COLORS.length];
    return [
      `<text x="${labelW - 8}" y="${y + 15}" text-anchor="end" ${FONT}>${esc(b.label)}</text>`,
      `<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${color}"/>`,
      `<text x="${labelW + w + 6}" y="${y + 15}" ${FONT}>${Number.isFinite(b.value) ? b.value : "failed"} ${esc(unit)}</text>`,
    ].join("");
  });
  const legend =
    groups.length > 1
      ? groups.map((g, i) => `<rect x="${labelW + i * 170}" y="${height - 22}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/><text x="${labelW + i * 170 + 16}" y="${height - 12}" ${FONT}>${esc(g)}</text>`).join("")
      : "";
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${labelW + plotW + 110}" height="${height}" viewBox="0 0 ${labelW + plotW + 110} ${height}">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-family="sans-serif" font-size="15" font-weight="bold">${esc(title)}</text>
${rows.join("\n")}
${legend}
</svg>
`;
}

export interface Series {
  name: string;
  points: { x: number; y: number }[];
  /** Right-hand axis instead of the left. */
  right?: boolean;
}

/** Lines over a log10 x axis; a dashed horizontal line at `limit` on the left axis. */
export function lineChart(title: string, xLabel: string, yLabel: string, yRightLabel: string, series: Series[], limit?: { y: number; label: string }): string {
  const W = 720;
  const H = 380;
  const L = 70;
  const R = 70;
  const T = 40;
  const B = 60;
  const all = series.flatMap((s) => s.points);
  if (!all.length) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="60"><text x="10" y="30" ${FONT}>${esc(title)}: no data</text></svg>\n`;
  const xMin = Math.log10(Math.min(...all.map((p) => p.x)));
  const xMax = Math.max(xMin + 1, Math.log10(Math.max(...all.map((p) => p.x))));
  const yMaxOf = (right: boolean) => Math.max(1, ...(limit && !right ? [limit.y * 1.2] : []), ...series.filter((s) => !!s.right === right).flatMap((s) => s.points.map((p) => p.y))) * 1.05;
  const yMax = { left: yMaxOf(false), right: yMaxOf(true) };
  const px = (x: number) => L + ((Math.log10(x) - xMin) / (xMax - xMin)) * (W - L - R);
  const py = (y: number, right?: boolean) => H - B - (y / (right ? yMax.right : yMax.left)) * (H - T - B);
  const ticks: string[] = [];
  for (let e = Math.floor(xMin); e <= Math.ceil(xMax); e++) {
    for (const m of [1, 2, 5]) {
      const x = m * 10 ** e;
      if (Math.log10(x) < xMin - 1e-9 || Math.log10(x) > xMax + 1e-9) continue;
      ticks.push(`<line x1="${px(x)}" y1="${H - B}" x2="${px(x)}" y2="${T}" stroke="#eee"/><text x="${px(x)}" y="${H - B + 16}" text-anchor="middle" ${FONT}>${x}</text>`);
    }
  }
  for (const right of [false, true]) {
    if (!series.some((s) => !!s.right === right)) continue;
    const max = right ? yMax.right : yMax.left;
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      ticks.push(`<text x="${right ? W - R + 6 : L - 6}" y="${py(v, right) + 4}" text-anchor="${right ? "start" : "end"}" ${FONT}>${v >= 100 ? Math.round(v) : v.toFixed(1)}</text>`);
    }
  }
  const lines = series.map((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.points.map((p) => `${px(p.x).toFixed(1)},${py(p.y, s.right).toFixed(1)}`).join(" ");
    const dots = s.points.map((p) => `<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y, s.right).toFixed(1)}" r="3" fill="${color}"/>`).join("");
    return `<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2"${s.right ? ` stroke-dasharray="6 3"` : ""}/>${dots}<rect x="${10 + i * 180}" y="${H - 22}" width="12" height="12" fill="${color}"/><text x="${26 + i * 180}" y="${H - 12}" ${FONT}>${esc(s.name)}${s.right ? " (right)" : ""}</text>`;
  });
  const limitLine = limit ? `<line x1="${L}" y1="${py(limit.y)}" x2="${W - R}" y2="${py(limit.y)}" stroke="#d62728" stroke-dasharray="4 4"/><text x="${W - R - 4}" y="${py(limit.y) - 4}" text-anchor="end" ${FONT} fill="#d62728">${esc(limit.label)}</text>` : "";
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-family="sans-serif" font-size="15" font-weight="bold">${esc(title)}</text>
<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>
${ticks.join("\n")}
<text x="${(L + W - R) / 2}" y="${H - B + 34}" text-anchor="middle" ${FONT}>${esc(xLabel)}</text>
<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" ${FONT} transform="rotate(-90 16 ${(T + H - B) / 2})">${esc(yLabel)}</text>
${yRightLabel ? `<text x="${W - 12}" y="${(T + H - B) / 2}" text-anchor="middle" ${FONT} transform="rotate(90 ${W - 12} ${(T + H - B) / 2})">${esc(yRightLabel)}</text>` : ""}
${limitLine}
${lines.join("\n")}
</svg>
`;
}
