//! The HTML renderer: one self-contained page a person can open from a CI artifact or attach to
//! a review.
//!
//! Self-contained means: inline CSS, inline SVG charts, no JavaScript, no fonts, images or links
//! to anything outside the file, and a Content-Security-Policy that forbids loading any. A
//! report carries attacker-controlled text (dataset records, file names inside archives), so
//! every string from the report is HTML-escaped, and control, bidi and invisible characters are
//! shown as `\u{…}` escapes rather than allowed to reorder or hide text.
//!
//! Contents: header (gate, verdict, fail-on, tool, subjects with digests), one card per
//! severity, a "findings per check" bar chart coloured by each check's default severity, every
//! chart in [`Report::charts`] drawn generically ([`ChartKind::Bar`] as horizontal bars,
//! [`ChartKind::Histogram`] as vertical bars over bins, [`ChartKind::Heatmap`] as a grid of cells
//! coloured by log10 of the value, [`ChartKind::Scatter`] as points coloured by series with a
//! legend), and a findings table, most severe first,
//! capped at [`MAX_TABLE_ROWS`] rows (the JSON report has them all).
use super::text::visible;
use crate::{Chart, ChartKind, CheckInfo, Finding, Report, Severity, Verdict};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The most findings listed in the table; the page says how many more the JSON report holds.
pub const MAX_TABLE_ROWS: usize = 5_000;

/// Bars drawn per bar chart before the rest are summarised in a note.
const MAX_BARS: usize = 60;
/// Bins drawn per histogram before the rest are summarised in a note.
const MAX_BINS: usize = 400;
/// Heatmap rows and columns drawn before the rest are summarised in a note.
const MAX_HEAT_ROWS: usize = 160;
const MAX_HEAT_COLS: usize = 48;
/// Points drawn per scatter chart; larger charts are thinned to an even stride (noted).
const MAX_POINTS: usize = 4_000;
/// Series colours of scatter charts (the last is reused past the end).
const SERIES_COLORS: [&str; 8] = [
    "#4f46e5", "#dc2626", "#059669", "#d97706", "#0891b2", "#9333ea", "#64748b", "#be185d",
];
/// Heatmap colour scale bounds (decades): the scale spans the data's decades within these.
const HEAT_LOG_FLOOR: i32 = -12;
const HEAT_LOG_CEIL: i32 = 3;
/// Evidence longer than this (compact JSON, in chars) is clipped in the table.
const MAX_EVIDENCE_CHARS: usize = 4_000;

const CSS: &str = r#"
:root{--critical:#8b1a1a;--high:#dc2626;--medium:#d97706;--low:#2563eb;--info:#64748b;
--fg:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f1f5f9;--card:#ffffff;--accent:#4f46e5}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
.wrap{max-width:1200px;margin:0 auto;padding:0 32px}
header.top{background:#0f172a;color:#e2e8f0;padding:28px 0 24px}
.title-row{display:flex;align-items:center;justify-content:space-between;gap:24px}
.eyebrow{text-transform:uppercase;letter-spacing:.12em;font-size:11px;color:#94a3b8;font-weight:600}
h1{margin:2px 0 0;font-size:26px;font-weight:650;color:#fff}
.verdict{font-weight:800;font-size:20px;letter-spacing:.08em;padding:8px 22px;border-radius:8px;color:#fff}
.verdict.fail{background:#dc2626}
.verdict.pass{background:#16a34a}
dl.meta{display:flex;flex-wrap:wrap;gap:8px 40px;margin:18px 0 0}
dl.meta div{min-width:0}
dl.meta dt{font-size:11px;text-transform:uppercase;letter-spacing:.08em;color:#94a3b8}
dl.meta dd{margin:0;font-size:15px;color:#f8fafc;font-weight:550}
main.wrap{padding-top:24px;padding-bottom:40px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin:0 0 20px}
section.bare{background:none;border:0;padding:0}
h2{font-size:16px;margin:0 0 12px;font-weight:650}
.note{color:var(--muted);font-size:13px;margin:6px 0 0}
table{border-collapse:collapse;width:100%}
th{text-align:left;font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);
font-weight:600;border-bottom:1px solid var(--line);padding:6px 10px}
td{padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top}
table.subjects td:first-child{width:35%;overflow-wrap:anywhere}
table.subjects code{overflow-wrap:anywhere;color:#334155}
.cards{display:grid;grid-template-columns:repeat(5,1fr);gap:14px}
.card{background:var(--card);border:1px solid var(--line);border-top:4px solid var(--c);border-radius:10px;padding:12px 16px}
.card .n{font-size:30px;font-weight:700;line-height:1.1;color:var(--c)}
.card .l{font-size:12px;text-transform:uppercase;letter-spacing:.08em;color:var(--muted);font-weight:600}
.card .t{font-size:11px;color:var(--muted);margin-top:2px;min-height:16px}
.card.zero .n{color:#cbd5e1}
.sev-critical{--c:var(--critical)}.sev-high{--c:var(--high)}.sev-medium{--c:var(--medium)}
.sev-low{--c:var(--low)}.sev-info{--c:var(--info)}
svg.chart{display:block;width:100%;height:auto;overflow:visible}
svg.chart text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;font-size:12px;fill:#334155}
svg.chart .grid{stroke:#e2e8f0;stroke-width:1}
svg.chart .axis{stroke:#94a3b8;stroke-width:1}
svg.chart .val{fill:#0f172a;font-weight:600}
svg.chart .cap{fill:#64748b;font-size:11.5px}
.legend{display:flex;flex-wrap:wrap;gap:16px;font-size:12px;color:var(--muted);margin-top:8px}
.legend span::before{content:"";display:inline-block;width:10px;height:10px;border-radius:2px;background:var(--c);margin-right:6px;vertical-align:-1px}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:11px;font-weight:700;
text-transform:uppercase;letter-spacing:.05em;color:#fff;background:var(--c);white-space:nowrap}
table.findings{font-size:13px;table-layout:fixed}
table.findings tbody tr:nth-child(even){background:#f8fafc}
table.findings .id{font-weight:700}
table.findings .sub{display:block;color:var(--muted);font-size:11.5px;overflow-wrap:anywhere}
table.findings td{overflow-wrap:anywhere}
details{margin-top:4px}
summary{cursor:pointer;color:var(--accent);font-size:12px}
pre{margin:4px 0 0;padding:8px 10px;background:#f1f5f9;border:1px solid var(--line);border-radius:6px;
white-space:pre-wrap;overflow-wrap:anywhere}
.empty{color:var(--muted);font-style:italic}
footer{color:var(--muted);font-size:12px;padding:0 0 32px}
@media print{body{background:#fff}section{break-inside:avoid}}
"#;

/// Renders `report` as one self-contained HTML page. `checks` supplies each check's default
/// severity (bar colours) and doc line (tooltips).
pub fn render(report: &Report, checks: &[CheckInfo]) -> String {
    let mut out =
        String::with_capacity(16 * 1024 + report.findings.len().min(MAX_TABLE_ROWS) * 600);
    let verdict = verdict_word(report.verdict);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"{} {}\">\n\
         <title>{} gate: {} — tunegate report</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&report.tool.name),
        esc(&report.tool.version),
        esc(&report.gate),
        verdict,
    );
    header(&mut out, report);
    out.push_str("<main class=\"wrap\">\n");
    subjects(&mut out, report);
    cards(&mut out, report);
    per_check_chart(&mut out, report, checks);
    for chart in &report.charts {
        generic_chart(&mut out, chart);
    }
    findings_table(&mut out, report);
    out.push_str("</main>\n");
    let _ = write!(
        out,
        "<footer class=\"wrap\">Generated by {} {} · report schema <code>{}</code> · \
         the JSON report (<code>--format json</code>) holds every finding with its full evidence.</footer>\n\
         </body>\n</html>\n",
        esc(&report.tool.name),
        esc(&report.tool.version),
        esc(&report.schema),
    );
    out
}

fn header(out: &mut String, report: &Report) {
    let class = match report.verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
    };
    let _ = write!(
        out,
        "<header class=\"top\"><div class=\"wrap\">\n<div class=\"title-row\"><div>\
         <div class=\"eyebrow\">tunegate report</div><h1>{} gate</h1></div>\
         <div class=\"verdict {class}\" role=\"status\">{}</div></div>\n<dl class=\"meta\">",
        esc(&report.gate),
        verdict_word(report.verdict),
    );
    let failing = report
        .findings
        .iter()
        .filter(|f| f.severity >= report.fail_on)
        .count();
    meta(out, "Fail-on", &format!("{} and above", report.fail_on));
    meta(
        out,
        "Findings",
        &format!(
            "{} total · {} at or above {}",
            fmt_count(report.findings.len() as u64),
            fmt_count(failing as u64),
            report.fail_on
        ),
    );
    if let Some(records) = report.summary.records {
        let v = match report.summary.flagged_records {
            Some(f) => format!("{} read · {} flagged", fmt_count(records), fmt_count(f)),
            None => format!("{} read", fmt_count(records)),
        };
        meta(out, "Records", &v);
    }
    meta(
        out,
        "Tool",
        &format!("{} {}", report.tool.name, report.tool.version),
    );
    out.push_str("</dl>\n</div></header>\n");
}

fn meta(out: &mut String, term: &str, value: &str) {
    let _ = write!(
        out,
        "<div><dt>{}</dt><dd>{}</dd></div>",
        esc(term),
        esc(value)
    );
}

fn subjects(out: &mut String, report: &Report) {
    out.push_str("<section>\n<h2>Subjects</h2>\n");
    if report.subjects.is_empty() {
        out.push_str("<p class=\"empty\">No subjects recorded.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<table class=\"subjects\"><thead><tr><th>Artifact</th><th>Digest</th></tr></thead><tbody>\n",
    );
    for s in &report.subjects {
        let digests = if s.digest.is_empty() {
            "<span class=\"empty\">no digest</span>".to_string()
        } else {
            s.digest
                .iter()
                .map(|(alg, hex)| format!("<code>{}:{}</code>", esc(alg), esc(hex)))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"mono\">{}</td><td>{digests}</td></tr>",
            esc(&s.name)
        );
    }
    out.push_str("</tbody></table>\n</section>\n");
}

fn cards(out: &mut String, report: &Report) {
    let mut counts: BTreeMap<Severity, u64> = BTreeMap::new();
    for f in &report.findings {
        *counts.entry(f.severity).or_insert(0) += 1;
    }
    out.push_str("<section class=\"bare\"><div class=\"cards\">\n");
    for s in Severity::ALL.iter().rev() {
        let n = counts.get(s).copied().unwrap_or(0);
        let zero = if n == 0 { " zero" } else { "" };
        let gate = if *s >= report.fail_on {
            "fails the gate"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<div class=\"card sev-{s}{zero}\"><div class=\"l\">{s}</div><div class=\"n\">{}</div>\
             <div class=\"t\">{gate}</div></div>",
            fmt_count(n)
        );
    }
    out.push_str("</div></section>\n");
}

/// One horizontal bar: label, tooltip, value, CSS colour.
struct Bar {
    label: String,
    tooltip: String,
    value: f64,
    color: String,
}

fn per_check_chart(out: &mut String, report: &Report, checks: &[CheckInfo]) {
    let by_name: BTreeMap<&str, &CheckInfo> = checks.iter().map(|c| (c.name, c)).collect();
    // Id and highest severity per check name, from the findings themselves.
    let mut seen: BTreeMap<&str, (&str, Severity, u64)> = BTreeMap::new();
    for f in &report.findings {
        let e = seen
            .entry(f.check.as_str())
            .or_insert((f.id.as_str(), f.severity, 0));
        e.1 = e.1.max(f.severity);
        e.2 += 1;
    }
    let counts: Vec<(&str, u64)> = if report.summary.findings_by_check.is_empty() {
        seen.iter().map(|(k, v)| (*k, v.2)).collect()
    } else {
        report
            .summary
            .findings_by_check
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    };
    let mut bars: Vec<(Bar, u64)> = counts
        .into_iter()
        .map(|(name, n)| {
            let info = by_name.get(name);
            let id = info
                .map(|c| c.id)
                .or_else(|| seen.get(name).map(|s| s.0))
                .unwrap_or("");
            let severity = info
                .map(|c| c.severity)
                .or_else(|| seen.get(name).map(|s| s.1))
                .unwrap_or(Severity::Info);
            let doc = info.map(|c| c.doc).unwrap_or("");
            let label = if id.is_empty() {
                name.to_string()
            } else {
                format!("{id} {name}")
            };
            let tooltip = if doc.is_empty() {
                format!("{label} — default severity {severity}")
            } else {
                format!("{label} — {doc} (default severity {severity})")
            };
            let bar = Bar {
                label,
                tooltip,
                value: n as f64,
                color: format!("var(--{severity})"),
            };
            (bar, n)
        })
        .collect();
    bars.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.label.cmp(&b.0.label)));
    out.push_str("<section id=\"findings-per-check\">\n<h2>Findings per check</h2>\n");
    if bars.is_empty() {
        out.push_str("<p class=\"empty\">No findings.</p>\n</section>\n");
        return;
    }
    let bars: Vec<Bar> = bars.into_iter().map(|(b, _)| b).collect();
    hbar_svg(out, "findings-per-check", &bars, "findings");
    out.push_str("<div class=\"legend\">");
    for s in Severity::ALL.iter().rev() {
        let _ = write!(out, "<span class=\"sev-{s}\">{s}</span>");
    }
    out.push_str("<span style=\"--c:transparent\">colour = the check's default severity</span></div>\n</section>\n");
}

fn generic_chart(out: &mut String, chart: &Chart) {
    let _ = writeln!(
        out,
        "<section id=\"chart-{}\">\n<h2>{}</h2>",
        esc(&chart.id),
        esc(&chart.title)
    );
    if let ChartKind::Heatmap { columns } = &chart.kind {
        heatmap_svg(out, chart, columns);
        out.push_str("</section>\n");
        return;
    }
    if let ChartKind::Scatter { x, y } = &chart.kind {
        scatter_svg(out, chart, x, y);
        out.push_str("</section>\n");
        return;
    }
    let n = chart.labels.len().min(chart.values.len());
    if n == 0 {
        out.push_str("<p class=\"empty\">No data.</p>\n</section>\n");
        return;
    }
    match &chart.kind {
        ChartKind::Bar => {
            let bars: Vec<Bar> = chart
                .labels
                .iter()
                .zip(&chart.values)
                .map(|(l, v)| Bar {
                    label: l.clone(),
                    tooltip: format!("{l}: {}", fmt_num(*v)),
                    value: *v,
                    color: "var(--accent)".to_string(),
                })
                .collect();
            hbar_svg(out, &chart.id, &bars, &chart.unit);
        }
        ChartKind::Histogram => histogram_svg(out, chart, n),
        ChartKind::Heatmap { .. } | ChartKind::Scatter { .. } => {}
    }
    if chart.labels.len() != chart.values.len() {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} labels but {} values; drew the first {n}.</p>",
            chart.labels.len(),
            chart.values.len()
        );
    }
    out.push_str("</section>\n");
}

/// Horizontal bars with labels on the left and values at the bar ends.
fn hbar_svg(out: &mut String, id: &str, bars: &[Bar], unit: &str) {
    const W: f64 = 1000.0;
    const LABEL_W: f64 = 300.0;
    const VALUE_W: f64 = 90.0;
    const ROW: f64 = 26.0;
    const BAR_H: f64 = 17.0;
    const TOP: f64 = 6.0;
    let shown = &bars[..bars.len().min(MAX_BARS)];
    let max = shown
        .iter()
        .map(|b| b.value)
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let plot_w = W - LABEL_W - VALUE_W;
    let caption_h = if unit.is_empty() { 0.0 } else { 22.0 };
    let h = TOP + ROW * shown.len() as f64 + 4.0 + caption_h;
    let _ = writeln!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"{}\" data-chart=\"{}\">",
        esc(&format!("bar chart, {} bars", shown.len())),
        esc(id)
    );
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{LABEL_W}\" y1=\"{TOP}\" x2=\"{LABEL_W}\" y2=\"{}\"/>",
        TOP + ROW * shown.len() as f64
    );
    for (i, b) in shown.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let v = if b.value.is_finite() {
            b.value.max(0.0)
        } else {
            0.0
        };
        let w = if max > 0.0 { plot_w * v / max } else { 0.0 };
        // A non-zero value always gets a visible sliver.
        let w = if v > 0.0 { w.max(2.0) } else { 0.0 };
        let _ = writeln!(
            out,
            "<g><title>{}</title><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL_W}\" y=\"{}\" width=\"{}\" height=\"{BAR_H}\" rx=\"2\" style=\"fill:{}\"/>\
             <text class=\"val\" x=\"{}\" y=\"{}\">{}</text></g>",
            esc(&b.tooltip),
            LABEL_W - 10.0,
            y + ROW / 2.0 + 4.0,
            esc(&clip_label(&b.label, 44)),
            y + (ROW - BAR_H) / 2.0,
            px(w),
            b.color,
            px(LABEL_W + w + 8.0),
            y + ROW / 2.0 + 4.0,
            esc(&fmt_num(b.value)),
        );
    }
    if !unit.is_empty() {
        let _ = writeln!(
            out,
            "<text class=\"cap\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            LABEL_W + plot_w / 2.0,
            h - 6.0,
            esc(unit)
        );
    }
    out.push_str("</svg>\n");
    if bars.len() > shown.len() {
        let _ = writeln!(
            out,
            "<p class=\"note\">Showing the first {} of {} bars.</p>",
            shown.len(),
            bars.len()
        );
    }
}

/// Vertical bars over ordered bins, with a value axis, gridlines and bin labels.
fn histogram_svg(out: &mut String, chart: &Chart, n: usize) {
    const W: f64 = 1000.0;
    const H: f64 = 300.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 24.0;
    const TOP: f64 = 12.0;
    const BOTTOM: f64 = 40.0;
    let n_shown = n.min(MAX_BINS);
    let values: Vec<f64> = chart.values[..n_shown]
        .iter()
        .map(|v| if v.is_finite() { v.max(0.0) } else { 0.0 })
        .collect();
    let labels = &chart.labels[..n_shown];
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let (step, top) = nice_axis(max);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let slot = plot_w / n_shown as f64;
    let gap = if slot > 6.0 {
        (slot * 0.12).min(6.0)
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" data-chart=\"{}\">",
        esc(&format!("histogram, {n_shown} bins")),
        esc(&chart.id)
    );
    // Gridlines and value ticks.
    let mut t = 0.0;
    let mut guard = 0;
    while t <= top + step * 1e-9 && guard < 20 {
        let y = TOP + plot_h - plot_h * t / top;
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            px(y),
            W - RIGHT,
            px(y),
            LEFT - 8.0,
            px(y + 4.0),
            esc(&fmt_num(t))
        );
        t += step;
        guard += 1;
    }
    // Bars.
    for (i, (v, label)) in values.iter().zip(labels).enumerate() {
        let bh = plot_h * v / top;
        let bh = if *v > 0.0 { bh.max(1.5) } else { 0.0 };
        let x = LEFT + slot * i as f64 + gap / 2.0;
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" style=\"fill:var(--accent)\"><title>{}</title></rect>",
            px(x),
            px(TOP + plot_h - bh),
            px((slot - gap).max(0.5)),
            px(bh),
            esc(&format!("{label}: {}", fmt_num(chart.values[i]))),
        );
    }
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h
    );
    // Bin labels: every k-th, so that they never overlap.
    let longest = labels
        .iter()
        .map(|l| l.chars().count().min(16))
        .max()
        .unwrap_or(1);
    let needed = longest as f64 * 7.2 + 18.0;
    let every = ((needed / slot).ceil() as usize).max(1);
    for (i, label) in labels.iter().enumerate() {
        if i % every != 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            px(LEFT + slot * (i as f64 + 0.5)),
            TOP + plot_h + 16.0,
            esc(&clip_label(label, 16))
        );
    }
    if !chart.unit.is_empty() {
        let _ = writeln!(
            out,
            "<text class=\"cap\" transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            px(TOP + plot_h / 2.0),
            esc(&chart.unit)
        );
    }
    out.push_str("</svg>\n");
    if n > n_shown {
        let _ = writeln!(
            out,
            "<p class=\"note\">Showing the first {n_shown} of {n} bins.</p>"
        );
    }
}

/// The decades `(lo, hi)` a heatmap's colour scale spans: from the smallest positive value's
/// decade to the largest's, at least two decades wide, within the floor and ceiling.
fn heat_range(values: &[f64]) -> (i32, i32) {
    let pos = values.iter().filter(|v| v.is_finite() && **v > 0.0);
    let lo = pos.clone().fold(f64::INFINITY, |a, v| a.min(*v));
    let hi = pos.fold(0.0_f64, |a, v| a.max(*v));
    if hi <= 0.0 {
        return (-8, 0);
    }
    let hi = (hi.log10().ceil() as i32).clamp(HEAT_LOG_FLOOR + 2, HEAT_LOG_CEIL);
    let lo = (lo.log10().floor() as i32).clamp(HEAT_LOG_FLOOR, hi - 2);
    (lo, hi)
}

/// The fill of a heatmap cell: grey for zero, pale yellow to dark red over `10^lo ..= 10^hi`
/// on a log scale (values outside get the end colours).
fn heat_color(v: f64, (lo, hi): (i32, i32)) -> String {
    if !v.is_finite() || v <= 0.0 {
        return "#e2e8f0".into();
    }
    let t = ((v.log10() - f64::from(lo)) / f64::from(hi - lo)).clamp(0.0, 1.0);
    // Pale yellow (254,243,199) -> orange (234,88,12) -> dark red (127,29,29).
    let (a, b, u) = if t < 0.5 {
        ((254.0, 243.0, 199.0), (234.0, 88.0, 12.0), t * 2.0)
    } else {
        ((234.0, 88.0, 12.0), (127.0, 29.0, 29.0), t * 2.0 - 1.0)
    };
    let mix = |x: f64, y: f64| (x + (y - x) * u).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

/// Rows × columns of cells with row labels on the left, column labels above (rotated) and a
/// decade legend below.
fn heatmap_svg(out: &mut String, chart: &Chart, columns: &[String]) {
    const W: f64 = 1000.0;
    const LEFT: f64 = 190.0;
    const TOP: f64 = 150.0;
    const CELL_H: f64 = 16.0;
    const LEGEND_H: f64 = 44.0;
    let (rows, cols) = (chart.labels.len(), columns.len());
    if rows == 0 || cols == 0 || chart.values.len() != rows * cols {
        let _ = writeln!(
            out,
            "<p class=\"empty\">No data (or {} values for {rows} rows × {cols} columns).</p>",
            chart.values.len()
        );
        return;
    }
    let (rs, cs) = (rows.min(MAX_HEAT_ROWS), cols.min(MAX_HEAT_COLS));
    let range = heat_range(&chart.values);
    let cell_w = ((W - LEFT - 10.0) / cs as f64).min(60.0);
    let h = TOP + CELL_H * rs as f64 + LEGEND_H;
    let _ = writeln!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {}\" role=\"img\" aria-label=\"{}\" data-chart=\"{}\">",
        px(h),
        esc(&format!("heatmap, {rs} rows by {cs} columns")),
        esc(&chart.id)
    );
    for (j, c) in columns[..cs].iter().enumerate() {
        let x = LEFT + cell_w * (j as f64 + 0.5);
        let _ = writeln!(
            out,
            "<text transform=\"translate({} {}) rotate(-55)\" font-size=\"11\">{}</text>",
            px(x + 3.0),
            px(TOP - 6.0),
            esc(&clip_label(c, 26))
        );
    }
    for (i, r) in chart.labels[..rs].iter().enumerate() {
        let y = TOP + CELL_H * i as f64;
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\">{}</text>",
            LEFT - 8.0,
            px(y + CELL_H - 4.0),
            esc(&clip_label(r, 30))
        );
        for (j, c) in columns[..cs].iter().enumerate() {
            let v = chart.values[i * cols + j];
            if v < 0.0 {
                continue;
            }
            let tip = if v == 0.0 {
                format!("{r} · {c}: unchanged")
            } else {
                format!("{r} · {c}: {v:.3e}")
            };
            let _ = writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" style=\"fill:{}\"><title>{}</title></rect>",
                px(LEFT + cell_w * j as f64 + 0.5),
                px(y + 0.5),
                px((cell_w - 1.0).max(0.5)),
                CELL_H - 1.0,
                heat_color(v, range),
                esc(&tip)
            );
        }
    }
    // Legend: one swatch per decade.
    let ly = TOP + CELL_H * rs as f64 + 14.0;
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{}\" width=\"28\" height=\"12\" style=\"fill:{}\"/><text class=\"cap\" x=\"{}\" y=\"{}\">0</text>",
        px(ly),
        heat_color(0.0, range),
        LEFT + 2.0,
        px(ly + 26.0)
    );
    let decades = (range.1 - range.0) as usize;
    for k in 0..=decades {
        let e = f64::from(range.0) + k as f64;
        let x = LEFT + 40.0 + 34.0 * k as f64;
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"28\" height=\"12\" style=\"fill:{}\"/><text class=\"cap\" x=\"{}\" y=\"{}\">1e{}</text>",
            px(x),
            px(ly),
            heat_color(10f64.powf(e), range),
            px(x),
            px(ly + 26.0),
            e as i32
        );
    }
    if !chart.unit.is_empty() {
        let _ = writeln!(
            out,
            "<text class=\"cap\" x=\"{}\" y=\"{}\">{}</text>",
            px(LEFT + 40.0 + 34.0 * (decades as f64 + 1.0) + 10.0),
            px(ly + 10.0),
            esc(&chart.unit)
        );
    }
    out.push_str("</svg>\n");
    if rows > rs || cols > cs {
        let _ = writeln!(
            out,
            "<p class=\"note\">Showing the first {rs} of {rows} rows and {cs} of {cols} columns.</p>"
        );
    }
}

/// Points coloured by series, with axes, captions and a legend (series in first-seen order).
fn scatter_svg(out: &mut String, chart: &Chart, x_cap: &str, y_cap: &str) {
    const W: f64 = 1000.0;
    const H: f64 = 460.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 24.0;
    const TOP: f64 = 12.0;
    const BOTTOM: f64 = 48.0;
    let n = chart.labels.len();
    if n == 0 || chart.values.len() != 2 * n {
        let _ = writeln!(
            out,
            "<p class=\"empty\">No data (or {} values for {n} points).</p>",
            chart.values.len()
        );
        return;
    }
    let points: Vec<(usize, f64, f64)> = (0..n)
        .map(|i| (i, chart.values[2 * i], chart.values[2 * i + 1]))
        .filter(|(_, x, y)| x.is_finite() && y.is_finite())
        .collect();
    if points.is_empty() {
        out.push_str("<p class=\"empty\">No finite points.</p>\n");
        return;
    }
    let stride = points.len().div_ceil(MAX_POINTS).max(1);
    let mut series: Vec<&str> = Vec::new();
    for (i, _, _) in &points {
        if !series.contains(&chart.labels[*i].as_str()) {
            series.push(&chart.labels[*i]);
        }
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (_, x, y) in &points {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    let pad = |lo: f64, hi: f64| {
        let d = if hi > lo { (hi - lo) * 0.05 } else { 1.0 };
        (lo - d, hi + d)
    };
    let (x0, x1) = pad(x0, x1);
    let (y0, y1) = pad(y0, y1);
    let legend_h = 22.0 * series.len().min(SERIES_COLORS.len() * 4) as f64;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let total_h = H + legend_h;
    let sx = |x: f64| LEFT + plot_w * (x - x0) / (x1 - x0);
    let sy = |y: f64| TOP + plot_h - plot_h * (y - y0) / (y1 - y0);
    let _ = writeln!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {}\" role=\"img\" aria-label=\"{}\" data-chart=\"{}\">",
        px(total_h),
        esc(&format!("scatter plot, {} points in {} series", points.len(), series.len())),
        esc(&chart.id)
    );
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"none\" class=\"axis\" style=\"stroke:var(--line)\"/>",
        px(plot_w),
        px(plot_h)
    );
    for (v, anchor_x, anchor_y, horizontal) in [
        (x0, LEFT, TOP + plot_h + 16.0, true),
        (x1, W - RIGHT, TOP + plot_h + 16.0, true),
        (y0, LEFT - 8.0, TOP + plot_h, false),
        (y1, LEFT - 8.0, TOP + 10.0, false),
    ] {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"{}\">{}</text>",
            px(anchor_x),
            px(anchor_y),
            if horizontal { "middle" } else { "end" },
            esc(&fmt_num(v))
        );
    }
    for (k, (i, x, y)) in points.iter().enumerate() {
        if k % stride != 0 {
            continue;
        }
        let s = series
            .iter()
            .position(|s| *s == chart.labels[*i])
            .unwrap_or(0);
        let color = SERIES_COLORS[s.min(SERIES_COLORS.len() - 1)];
        let _ = writeln!(
            out,
            "<circle cx=\"{}\" cy=\"{}\" r=\"3\" style=\"fill:{color};fill-opacity:0.65\"><title>{}</title></circle>",
            px(sx(*x)),
            px(sy(*y)),
            esc(&format!("{}: ({}, {})", chart.labels[*i], fmt_num(*x), fmt_num(*y)))
        );
    }
    let _ = writeln!(
        out,
        "<text class=\"cap\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
         <text class=\"cap\" transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        px(LEFT + plot_w / 2.0),
        px(H - 10.0),
        esc(x_cap),
        px(TOP + plot_h / 2.0),
        esc(y_cap)
    );
    for (k, s) in series.iter().take(SERIES_COLORS.len() * 4).enumerate() {
        let ly = H + 22.0 * k as f64;
        let count = points
            .iter()
            .filter(|(i, _, _)| chart.labels[*i] == *s)
            .count();
        let _ = writeln!(
            out,
            "<circle cx=\"{}\" cy=\"{}\" r=\"5\" style=\"fill:{}\"/><text x=\"{}\" y=\"{}\">{} ({count})</text>",
            px(LEFT + 6.0),
            px(ly),
            SERIES_COLORS[k.min(SERIES_COLORS.len() - 1)],
            px(LEFT + 18.0),
            px(ly + 4.0),
            esc(&clip_label(s, 60))
        );
    }
    out.push_str("</svg>\n");
    if stride > 1 {
        let _ = writeln!(
            out,
            "<p class=\"note\">Showing one point in {stride} of {} points.</p>",
            points.len()
        );
    }
}

/// A tick step and axis top for values in `0..=max`: 1, 2, 2.5 or 5 times a power of ten, about
/// four ticks.
fn nice_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 1.0);
    }
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let top = (max / step).ceil() * step;
    (step, if top > 0.0 { top } else { step })
}

fn findings_table(out: &mut String, report: &Report) {
    let total = report.findings.len();
    let _ = writeln!(
        out,
        "<section id=\"findings\">\n<h2>Findings <span class=\"note\">({})</span></h2>",
        fmt_count(total as u64)
    );
    if total == 0 {
        out.push_str("<p class=\"empty\">No findings.</p>\n</section>\n");
        return;
    }
    let mut order: Vec<&Finding> = report.findings.iter().collect();
    // Stable: within a severity, the report's order (file, record, check) is kept.
    order.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let shown = total.min(MAX_TABLE_ROWS);
    if shown < total {
        let _ = writeln!(
            out,
            "<p class=\"note\">Showing the {} most severe of {} findings; {} omitted. \
             The JSON report has all of them.</p>",
            fmt_count(shown as u64),
            fmt_count(total as u64),
            fmt_count((total - shown) as u64)
        );
    }
    out.push_str(
        "<table class=\"findings\"><colgroup><col style=\"width:104px\"><col style=\"width:150px\">\
         <col style=\"width:190px\"><col style=\"width:72px\"><col style=\"width:150px\"><col></colgroup>\n\
         <thead><tr><th>Severity</th><th>Check</th><th>File</th><th>Record</th><th>Field</th><th>Message</th></tr></thead>\n<tbody>\n",
    );
    for f in order.into_iter().take(shown) {
        finding_row(out, f);
    }
    out.push_str("</tbody></table>\n</section>\n");
}

fn finding_row(out: &mut String, f: &Finding) {
    let loc = &f.location;
    let mut file = match (&loc.file, loc.line) {
        (Some(file), Some(line)) => format!("{}:{line}", esc(file)),
        (Some(file), None) => esc(file),
        (None, Some(line)) => format!("line {line}"),
        (None, None) => "<span class=\"empty\">—</span>".to_string(),
    };
    if let Some(m) = &loc.member {
        let _ = write!(file, "<span class=\"sub\">member {}</span>", esc(m));
    }
    if let Some(t) = &loc.tensor {
        let _ = write!(file, "<span class=\"sub\">tensor {}</span>", esc(t));
    }
    let record = loc.record.map(|r| r.to_string()).unwrap_or_default();
    let mut field = loc.field.as_deref().map(esc).unwrap_or_default();
    if let Some([a, b]) = loc.span {
        let _ = write!(field, "<span class=\"sub\">chars {a}–{b}</span>");
    }
    let evidence = if f.evidence.is_null() || f.evidence.as_object().is_some_and(|o| o.is_empty()) {
        String::new()
    } else {
        let json = serde_json::to_string(&f.evidence).unwrap_or_default();
        format!(
            "<details><summary>evidence</summary><pre>{}</pre></details>",
            esc(&super::text::clip(&json, MAX_EVIDENCE_CHARS))
        )
    };
    let _ = writeln!(
        out,
        "<tr><td><span class=\"pill sev-{sev}\">{sev}</span></td>\
         <td><span class=\"id mono\">{}</span><span class=\"sub\">{}</span></td>\
         <td class=\"loc mono\">{file}</td><td class=\"mono\">{record}</td><td class=\"mono\">{field}</td>\
         <td class=\"msg\">{}{evidence}</td></tr>",
        esc(&f.id),
        esc(&f.check),
        esc(&f.message),
        sev = f.severity,
    );
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
    }
}

/// Escapes text for HTML element content and quoted attributes, after making invisible and
/// control characters visible.
fn esc(s: &str) -> String {
    let v = visible(s);
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn clip_label(s: &str, max: usize) -> String {
    super::text::clip(s, max.saturating_sub(1)).into_owned()
}

/// A coordinate with at most two decimals.
fn px(v: f64) -> String {
    let r = (v * 100.0).round() / 100.0;
    let s = format!("{r:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// `52,002`.
fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Integers with thousands separators; other values with up to three decimals.
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let sign = if v < 0.0 { "-" } else { "" };
        return format!("{sign}{}", fmt_count(v.abs() as u64));
    }
    let s = if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    };
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(52002), "52,002");
        assert_eq!(fmt_count(1234567), "1,234,567");
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(-1200.0), "-1,200");
        assert_eq!(fmt_num(0.125), "0.125");
        assert_eq!(fmt_num(0.1), "0.1");
        assert_eq!(fmt_num(-0.0001), "0");
        assert_eq!(fmt_num(f64::NAN), "n/a");
        assert_eq!(fmt_num(1234.56), "1234.6");
        assert_eq!(px(-0.001), "0");
        assert_eq!(px(12.5), "12.5");
    }

    #[test]
    fn axis_is_nice() {
        assert_eq!(nice_axis(0.0), (1.0, 1.0));
        assert_eq!(nice_axis(100.0), (25.0, 100.0));
        assert_eq!(nice_axis(7.0), (2.0, 8.0));
        assert_eq!(nice_axis(0.9), (0.25, 1.0));
        assert_eq!(nice_axis(f64::INFINITY), (1.0, 1.0));
    }

    #[test]
    fn heat_scale() {
        let r = (-8, 0);
        assert_eq!(heat_color(0.0, r), "#e2e8f0");
        assert_eq!(heat_color(1e-9, r), heat_color(1e-8, r));
        assert_eq!(heat_color(1.0, r), "#7f1d1d");
        assert_eq!(heat_color(5.0, r), "#7f1d1d");
        assert_eq!(heat_color(1e-4, r), "#ea580c");
        // The range follows the data: decades of the smallest and largest positive values.
        assert_eq!(heat_range(&[0.0, -1.0, 2e-4, 0.3]), (-4, 0));
        assert_eq!(heat_range(&[0.0, 1e-3]), (-5, -3));
        assert_eq!(heat_range(&[1e-30, 1e9]), (-12, 3));
        assert_eq!(heat_range(&[0.0, -1.0]), (-8, 0));
    }

    #[test]
    fn heatmap_draws_cells_and_skips_empty_ones() {
        let chart = Chart {
            id: "h".into(),
            title: "t".into(),
            kind: ChartKind::Heatmap {
                columns: vec!["q<".into(), "k".into()],
            },
            labels: vec!["0".into(), "1".into()],
            values: vec![0.0, 1e-3, -1.0, 1.0],
            unit: "relative change".into(),
        };
        let mut out = String::new();
        generic_chart(&mut out, &chart);
        // 3 cells + the zero swatch + one per decade from 1e-3 to 1e0.
        assert_eq!(out.matches("<rect").count(), 3 + 1 + 4);
        assert!(out.contains("q&lt;"));
        assert!(out.contains("0 · q&lt;: unchanged"));
        assert!(out.contains(">1e-3<") && out.contains(">1e0<"));
        let mut bad = chart.clone();
        bad.values.pop();
        let mut out = String::new();
        generic_chart(&mut out, &bad);
        assert!(out.contains("No data"));
    }

    #[test]
    fn scatter_colours_series_skips_non_finite_and_thins() {
        let chart = Chart {
            id: "s".into(),
            title: "t".into(),
            kind: ChartKind::Scatter {
                x: "PC1".into(),
                y: "PC2<".into(),
            },
            labels: vec!["a".into(), "b<".into(), "a".into(), "a".into()],
            values: vec![0.0, 0.0, 1.0, 2.0, f64::NAN, 1.0, -1.0, 3.0],
            unit: String::new(),
        };
        let mut out = String::new();
        generic_chart(&mut out, &chart);
        // 3 finite points + 2 legend swatches.
        assert_eq!(out.matches("<circle").count(), 3 + 2);
        assert!(out.contains("3 points in 2 series"));
        assert!(out.contains("b&lt; (1)") && out.contains("a (2)"));
        assert!(out.contains("PC2&lt;"));
        assert!(out.contains(SERIES_COLORS[0]) && out.contains(SERIES_COLORS[1]));
        let mut bad = chart.clone();
        bad.values.pop();
        let mut out = String::new();
        generic_chart(&mut out, &bad);
        assert!(out.contains("No data"));
        // Past MAX_POINTS the points are thinned to an even stride, and the page says so.
        let n = MAX_POINTS * 2 + 1;
        let big = Chart {
            labels: vec!["a".into(); n],
            values: (0..2 * n).map(|i| i as f64).collect(),
            ..chart
        };
        let mut out = String::new();
        generic_chart(&mut out, &big);
        assert_eq!(out.matches("<circle").count(), n.div_ceil(3) + 1);
        assert!(out.contains("Showing one point in 3 of"));
    }

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("a\u{202e}b"), "a\\u{202e}b");
    }
}
