//! The report's sections as typed blocks (see [`super::layout`]), the Markdown report
//! (`benchmark_report_{timestamp}.md`) rendered from them, and the number formats shared by the
//! Markdown and HTML renderings.

use super::document::{MetricStats, Report, StudyTable};
use super::layout::{self, Blocks, Section};
use super::sections::{self as build, community_rows, compliance_blocks};
use super::verdict::Level;
use crate::compliance::Compliance;

/// A figure with a precision that suits its size.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A fraction as a percentage.
pub fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}%", v * 100.0)
    } else {
        "-".into()
    }
}

/// Mean and CI, e.g. "123.4 [110.2, 130.8]".
pub fn mean_ci(m: Option<&MetricStats>) -> String {
    match m {
        None => "-".into(),
        Some(m) => match (m.ci_low, m.ci_high) {
            (Some(lo), Some(hi)) => format!("{} [{}, {}]", num(m.mean), num(lo), num(hi)),
            _ => num(m.mean),
        },
    }
}

/// A fraction score with its CI, e.g. "72.0% [65.1, 78.4]".
pub fn score_ci(value: f64, lo: Option<f64>, hi: Option<f64>) -> String {
    match (lo, hi) {
        (Some(lo), Some(hi)) => format!("{} [{:.1}, {:.1}]", pct(value), lo * 100.0, hi * 100.0),
        _ => pct(value),
    }
}

/// The p-value as shown.
pub fn p(v: Option<f64>) -> String {
    match v {
        Some(p) if p < 0.001 => "<0.001".into(),
        Some(p) => format!("{p:.3}"),
        None => "-".into(),
    }
}

/// Text safe inside a Markdown table cell.
pub fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The verdict of a figure, looked up in the report's verdicts.
pub fn verdict_of(r: &Report, model: &str, context: &str, metric: &str) -> Option<Level> {
    r.verdicts
        .iter()
        .find(|v| v.model == model && v.context == context && v.metric == metric)
        .map(|v| v.verdict)
}

/// The community rows as a pasteable Markdown table.
pub fn community_table(r: &Report) -> String {
    let mut b = Blocks::default();
    community_rows(&mut b, r);
    let mut md = layout::to_markdown(&b.0);
    // Pasteable: no blank line after the table.
    md.pop();
    md
}

/// The compliance section as Markdown (shared by the report and `edgebench compliance`).
pub fn compliance_section(c: &Compliance) -> String {
    let mut b = Blocks::default();
    compliance_blocks(&mut b, c);
    layout::to_markdown(&b.0)
}

/// The report's sections in order, each with an id and its blocks (Markdown and HTML render
/// them).
pub fn sections(r: &Report) -> Vec<Section> {
    type Build = fn(&mut Blocks, &Report);
    let parts: [(&'static str, Build); 8] = [
        ("setup", build::setup),
        ("performance", build::performance),
        ("capability", build::capability),
        ("tradeoff", build::tradeoff),
        ("comparisons", build::comparisons),
        ("interpretation", build::interpretation),
        ("failures", build::failures),
        ("community", build::community),
    ];
    let mut out: Vec<Section> = parts
        .iter()
        .map(|(id, f)| {
            let mut b = Blocks::default();
            f(&mut b, r);
            Section { id, blocks: b.0 }
        })
        .filter(|s| !s.blocks.is_empty())
        .collect();
    if let Some(t) = &r.study {
        let mut b = Blocks::default();
        study_blocks(&mut b, t);
        out.insert(
            0,
            Section {
                id: "study",
                blocks: b.0,
            },
        );
    }
    if let Some(c) = &r.machines {
        let mut b = Blocks::default();
        crate::results::machines::blocks(&mut b, c);
        out.push(Section {
            id: "machines",
            blocks: b.0,
        });
    }
    if let Some(c) = &r.compliance {
        let mut b = Blocks::default();
        compliance_blocks(&mut b, c);
        out.push(Section {
            id: "compliance",
            blocks: b.0,
        });
    }
    out
}

/// A study's table: its title, the table (the first column left, the figures right), its notes.
pub fn study_blocks(b: &mut Blocks, t: &StudyTable) {
    b.heading(2, t.title.clone());
    let head: Vec<&str> = t.head.iter().map(String::as_str).collect();
    let align: String = std::iter::once('l')
        .chain(std::iter::repeat('r'))
        .take(head.len())
        .collect();
    let table = b.table(&head, &align);
    for row in &t.rows {
        table.row(row.iter().map(|c| cell(c).into()).collect());
    }
    for n in &t.notes {
        b.para(n.clone());
    }
}

/// The title and the line under it.
pub fn preamble(r: &Report) -> Vec<layout::Block> {
    let mut b = Blocks::default();
    b.heading(1, "edgebench benchmark report");
    b.para(format!(
        "Generated {} from {} run(s) and {} eval(s).",
        r.generated,
        r.setup.iter().filter(|s| s.kind == "run").count(),
        r.capability.len()
    ));
    b.0
}

/// Renders the whole report as Markdown.
pub fn render(r: &Report) -> String {
    let mut out = layout::to_markdown(&preamble(r));
    for s in sections(r) {
        out.push_str(&layout::to_markdown(&s.blocks));
    }
    out
}
