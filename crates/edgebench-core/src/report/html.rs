//! The HTML report: one self-contained file (inline CSS and SVG, no scripts, no external
//! resources) rendered from the report's blocks (verdicts as data) plus charts, with print CSS
//! for PDF output.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::document::{model_label, Report};
use super::layout::{Align, Block, Span, Table};
use super::markdown;
use super::svg::{self, Bar, Point, Series, PALETTE};

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

const CSS: &str = r#"
:root { --good: #1a7f37; --fair: #b7791f; --poor: #c62828; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b; margin: 2rem auto; max-width: 1180px; padding: 0 1rem; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; border-bottom: 2px solid #ddd; padding-bottom: .2rem; margin-top: 2rem; }
h3 { font-size: 1.05rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: 12.5px; width: 100%; }
th, td { border: 1px solid #d0d0d0; padding: 3px 6px; vertical-align: top; }
th { background: #f3f3f3; text-align: left; overflow-wrap: anywhere; }
td.r { text-align: right; white-space: nowrap; }
blockquote { margin: .6rem 0; padding: .3rem .8rem; border-left: 4px solid var(--fair); background: #fdf8ec; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; background: #f5f5f5; padding: 0 2px; }
.v { font-weight: 600; white-space: nowrap; }
.v::before { content: "\25CF\00A0"; }
.v.good { color: var(--good); } .v.fair { color: var(--fair); } .v.poor { color: var(--poor); }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; }
svg.chart { max-width: 100%; height: auto; border: 1px solid #e5e5e5; }
svg .ct { font: 600 14px system-ui, sans-serif; } svg .tk { font: 11px system-ui, sans-serif; fill: #333; } svg .al { font: 12px system-ui, sans-serif; fill: #333; }
nav ul { columns: 3; padding-left: 1.2rem; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  nav { display: none; }
  h2 { break-after: avoid; page-break-after: avoid; }
  table, figure, svg.chart { break-inside: avoid; page-break-inside: avoid; }
  tr { break-inside: avoid; page-break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  @page { size: A4 landscape; margin: 12mm; }
}
"#;

/// Inline markup of the report's text (`code`, **bold**, `\|` and `\*` escapes), escaped.
fn inline(s: &str) -> String {
    let t = esc(s);
    let mut out = String::new();
    for (i, part) in t.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            for (j, p) in part.split("**").enumerate() {
                if j % 2 == 1 {
                    let _ = write!(out, "<strong>{p}</strong>");
                } else {
                    out.push_str(p);
                }
            }
        }
    }
    out.replace("\\|", "|").replace("\\*", "*")
}

/// Text and verdict marks: each mark a coloured dot whose class is the verdict.
fn spans(s: &[Span]) -> String {
    s.iter()
        .map(|s| match s {
            Span::Text(t) => inline(t),
            Span::Mark(l) => format!("<span class=\"v {}\"></span>", l.as_str()),
        })
        .collect()
}

fn table(out: &mut String, t: &Table) {
    out.push_str("<table><thead><tr>");
    for h in &t.head {
        let _ = write!(out, "<th>{}</th>", inline(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in &t.rows {
        out.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let class = if t.align.get(i) == Some(&Align::Right) {
                " class=\"r\""
            } else {
                ""
            };
            let _ = write!(out, "<td{class}>{}</td>", spans(&c.0));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>\n");
}

/// Renders the report's blocks as HTML.
pub fn blocks_to_html(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "<h{level}>{}</h{level}>", inline(text));
            }
            Block::Paragraph(s) => {
                let _ = writeln!(out, "<p>{}</p>", spans(s));
            }
            Block::Note(s) => {
                let _ = writeln!(out, "<blockquote><p>{}</p></blockquote>", spans(s));
            }
            Block::Table(t) => table(&mut out, t),
        }
    }
    out
}

fn figure(out: &mut String, svg: String, caption: &str) {
    let _ = write!(
        out,
        "<figure>{svg}<figcaption>{}</figcaption></figure>",
        esc(caption)
    );
}

fn perf_charts(r: &Report) -> String {
    let mut out = String::new();
    let models: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for p in &r.performance {
            let l = model_label(&p.model, &p.quantization);
            if !v.contains(&l) {
                v.push(l);
            }
        }
        v
    };
    let color =
        |label: &str| PALETTE[models.iter().position(|m| m == label).unwrap_or(0) % PALETTE.len()];
    for (metric, title, unit) in [
        ("ttft_ms", "Time to first token (mean, 95% CI)", "ttft_ms"),
        (
            "output_tokens_per_s",
            "Output tokens per second (mean, 95% CI)",
            "output_tokens_per_s",
        ),
        (
            "decode_tokens_per_s",
            "Decode tokens per second (mean, 95% CI)",
            "decode_tokens_per_s",
        ),
    ] {
        let bars: Vec<Bar> = r
            .performance
            .iter()
            .filter_map(|p| {
                let m = p.metrics.get(metric)?;
                let label = model_label(&p.model, &p.quantization);
                Some(Bar {
                    label: format!("{label} · {}", p.scenario),
                    value: m.mean,
                    ci: m.ci_low.zip(m.ci_high),
                    color: color(&label),
                })
            })
            .collect();
        if !bars.is_empty() {
            figure(
                &mut out,
                svg::bars(&format!("chart-{metric}"), title, unit, &bars),
                &format!("{title}; whiskers: 95% CI of the mean."),
            );
        }
    }
    let mut by_scenario: BTreeMap<&str, Vec<Series>> = BTreeMap::new();
    for l in &r.latency {
        let n = l.ttft_ms.len() as f64;
        let points = l
            .ttft_ms
            .iter()
            .enumerate()
            .map(|(i, v)| (*v, (i + 1) as f64 / n))
            .collect();
        by_scenario
            .entry(l.scenario.as_str())
            .or_default()
            .push(Series {
                label: format!("{} (run {})", l.model, l.run_id),
                points,
            });
    }
    for (scenario, series) in &by_scenario {
        figure(
            &mut out,
            svg::lines(
                &format!("chart-cdf-{}", crate::results::sanitize(scenario)),
                &format!("TTFT distribution: {scenario}"),
                "ttft_ms",
                "fraction of requests",
                series,
                true,
            ),
            &format!("Empirical CDF of ttft_ms per measured request, {scenario}."),
        );
    }
    for t in &r.timelines {
        let rss: Vec<(f64, f64)> = t
            .t_s
            .iter()
            .zip(&t.rss_mb)
            .filter_map(|(x, y)| y.map(|y| (*x, y)))
            .collect();
        let cpu: Vec<(f64, f64)> = t
            .t_s
            .iter()
            .copied()
            .zip(t.cpu_percent.iter().copied())
            .collect();
        let id = crate::results::sanitize(&format!("{}-{}-{}", t.run_id, t.model, t.scenario));
        if !rss.is_empty() {
            figure(
                &mut out,
                svg::lines(
                    &format!("chart-rss-{id}"),
                    &format!("Memory: {} · {}", t.model, t.scenario),
                    "seconds since the unit started",
                    "rss_mb",
                    &[Series {
                        label: "rss_mb (serving process)".into(),
                        points: rss,
                    }],
                    false,
                ),
                "Resident memory of the serving process over the unit.",
            );
        }
        figure(
            &mut out,
            svg::lines(
                &format!("chart-cpu-{id}"),
                &format!("CPU: {} · {}", t.model, t.scenario),
                "seconds since the unit started",
                "cpu_percent",
                &[Series {
                    label: "cpu_percent (all cores)".into(),
                    points: cpu,
                }],
                false,
            ),
            "System CPU use over the unit.",
        );
    }
    out
}

fn tradeoff_chart(r: &Report) -> String {
    let points: Vec<Point> = r
        .tradeoff
        .iter()
        .map(|t| Point {
            label: format!(
                "{}{} ({}, {})",
                if t.frontier { "★ " } else { "" },
                model_label(&t.model, &t.quantization),
                t.format,
                t.task
            ),
            x: t.decode_tokens_per_s,
            y: t.accuracy.value * 100.0,
            y_ci: t
                .accuracy
                .ci_low
                .zip(t.accuracy.ci_high)
                .map(|(a, b)| (a * 100.0, b * 100.0)),
        })
        .collect();
    if points.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    figure(
        &mut out,
        svg::scatter(
            "chart-tradeoff",
            "Accuracy vs decode speed",
            "decode_tokens_per_s",
            "accuracy (%)",
            &points,
        ),
        "Each point: one model on one task; whiskers: 95% CI of accuracy; ★: on the frontier (no other model of the task is at least as accurate and as fast and better on one).",
    );
    out
}

fn study_chart(r: &Report) -> String {
    let Some(c) = r.study.as_ref().and_then(|s| s.chart.as_ref()) else {
        return String::new();
    };
    if c.bars.is_empty() {
        return String::new();
    }
    let bars: Vec<Bar> = c
        .bars
        .iter()
        .enumerate()
        .map(|(i, b)| Bar {
            label: b.label.clone(),
            value: b.value,
            ci: b.ci.map(|[lo, hi]| (lo, hi)),
            color: PALETTE[i % PALETTE.len()],
        })
        .collect();
    let mut out = String::new();
    figure(
        &mut out,
        svg::bars("chart-study", &c.title, &c.unit, &bars),
        "One bar per step of the study; whiskers: 95% CI.",
    );
    out
}

fn capability_chart(r: &Report) -> String {
    let bars: Vec<Bar> = r
        .capability
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let s = c.scores.get("accuracy")?;
            Some(Bar {
                label: format!("{} · {}", model_label(&c.model, &c.quantization), c.task),
                value: s.value * 100.0,
                ci: s.ci_low.zip(s.ci_high).map(|(a, b)| (a * 100.0, b * 100.0)),
                color: PALETTE[i % PALETTE.len()],
            })
        })
        .collect();
    if bars.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    figure(
        &mut out,
        svg::bars("chart-accuracy", "Accuracy (95% CI)", "accuracy (%)", &bars),
        "Accuracy per model and task; whiskers: bootstrap 95% CI over items.",
    );
    out
}

/// Renders the whole report as one self-contained HTML page.
pub fn render(r: &Report) -> String {
    let sections = markdown::sections(r);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>edgebench benchmark report {}</title><style>{CSS}</style></head><body>\n",
        esc(&r.timestamp)
    );
    out.push_str(&blocks_to_html(&markdown::preamble(r)));
    out.push_str("<nav><ul>");
    for s in &sections {
        let _ = write!(
            out,
            "<li><a href=\"#{}\">{}</a></li>",
            s.id,
            inline(s.title())
        );
    }
    out.push_str("</ul></nav>\n");
    for s in &sections {
        let _ = write!(out, "<section id=\"{}\">", s.id);
        out.push_str(&blocks_to_html(&s.blocks));
        let charts = match s.id {
            "performance" => perf_charts(r),
            "capability" => capability_chart(r),
            "tradeoff" => tradeoff_chart(r),
            "study" => study_chart(r),
            _ => String::new(),
        };
        if !charts.is_empty() {
            let _ = write!(out, "<div class=\"charts\">{charts}</div>");
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::layout::{Blocks, Cell};
    use crate::report::verdict::Level;

    #[test]
    fn blocks_render_as_html_with_verdicts_as_classes() {
        let mut b = Blocks::default();
        b.heading(2, "Title");
        b.para("Some `code` and **bold** <b>.");
        let t = b.table(&["a", "b"], "lr");
        t.row(vec!["x \\| y".into(), Cell::judged("1", Some(Level::Good))]);
        let html = blocks_to_html(&b.0);
        assert!(html.contains("<h2>Title</h2>"));
        assert!(html.contains("<code>code</code>"));
        assert!(html.contains("<strong>bold</strong> &lt;b&gt;."));
        assert!(html.contains("<td>x | y</td>"));
        assert!(html.contains("<td class=\"r\"><span class=\"v good\"></span> 1</td>"));
        assert!(!html.contains('🟢'), "verdicts are classes, not emoji");
    }
}
