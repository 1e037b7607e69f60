//! Inline SVG charts for the HTML report: bars with CI whiskers, empirical CDFs, a scatter and
//! line timelines. Plain SVG text with fixed precision, so the output is deterministic.

use std::fmt::Write;

use super::html::esc;

/// Colours for series (colour-blind friendly, printable).
pub const PALETTE: &[&str] = &[
    "#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#7f7f00", "#000000",
];

const W: f64 = 760.0;
const H: f64 = 320.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 34.0;

/// A bar with its CI.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub ci: Option<(f64, f64)>,
    pub color: &'static str,
}

/// A named series of (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A "nice" axis maximum and tick step covering `max`.
fn nice(max: f64) -> (f64, f64) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, 0.25);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| s * 5.0 >= max)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn open(out: &mut String, id: &str, title: &str, height: f64) {
    let _ = write!(
        out,
        r##"<svg class="chart" id="{}" width="{W}" height="{height}" viewBox="0 0 {W} {height}" role="img" aria-labelledby="{0}-title"><title id="{0}-title">{}</title><rect x="0" y="0" width="{W}" height="{height}" fill="#ffffff"/><text x="{:.1}" y="20" class="ct">{1}</text>"##,
        esc(id),
        esc(title),
        LEFT
    );
}

/// Y axis with grid lines; returns the y mapping.
fn y_axis(out: &mut String, max: f64, bottom: f64, label: &str) -> impl Fn(f64) -> f64 {
    let (top_v, step) = nice(max);
    let plot_h = bottom - TOP;
    let y = move |v: f64| bottom - (v / top_v).clamp(0.0, 1.05) * plot_h;
    let mut v = 0.0;
    while v <= top_v + step * 0.01 {
        let py = y(v);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{py:.1}" y2="{py:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tk">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            tick(v)
        );
        v += step;
    }
    let _ = write!(
        out,
        r##"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle" class="al">{}</text><line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{bottom:.1}" stroke="#333"/>"##,
        (TOP + bottom) / 2.0,
        (TOP + bottom) / 2.0,
        esc(label)
    );
    y
}

/// A horizontal bar chart with 95% CI whiskers (labels on the left, so long names fit).
pub fn bars(id: &str, title: &str, unit: &str, bars: &[Bar]) -> String {
    const LABEL_W: f64 = 340.0;
    const ROW: f64 = 26.0;
    let mut out = String::new();
    let plot_top = TOP + 6.0;
    let bottom = plot_top + ROW * bars.len().max(1) as f64;
    let height = bottom + 48.0;
    open(&mut out, id, title, height);
    let max = bars
        .iter()
        .map(|b| b.ci.map_or(b.value, |c| c.1.max(b.value)))
        .fold(0.0, f64::max);
    let (top_v, step) = nice(max);
    let x0 = LABEL_W;
    let plot_w = W - RIGHT - x0;
    let x = |v: f64| x0 + (v / top_v).clamp(0.0, 1.05) * plot_w;
    let mut v = 0.0;
    while v <= top_v + step * 0.01 {
        let px = x(v);
        let _ = write!(
            out,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{plot_top:.1}" y2="{bottom:.1}" stroke="#e0e0e0"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" class="tk">{}</text>"##,
            bottom + 16.0,
            tick(v)
        );
        v += step;
    }
    let _ = write!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="al">{}</text>"##,
        x0 + plot_w / 2.0,
        bottom + 36.0,
        esc(unit)
    );
    for (i, b) in bars.iter().enumerate() {
        let cy = plot_top + ROW * (i as f64 + 0.5);
        let bh = ROW * 0.62;
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="tk">{}</text><rect class="bar" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{}: {}</title></rect>"#,
            x0 - 8.0,
            cy + 4.0,
            esc(&b.label),
            cy - bh / 2.0,
            (x(b.value.max(0.0)) - x0).max(0.0),
            b.color,
            esc(&b.label),
            tick(b.value)
        );
        if let Some((lo, hi)) = b.ci {
            let (xlo, xhi) = (x(lo.max(0.0)), x(hi.max(0.0)));
            let _ = write!(
                out,
                r##"<g class="whisker" stroke="#222" stroke-width="1.5"><line x1="{xlo:.1}" x2="{xhi:.1}" y1="{cy:.1}" y2="{cy:.1}"/><line x1="{xlo:.1}" x2="{xlo:.1}" y1="{:.1}" y2="{:.1}"/><line x1="{xhi:.1}" x2="{xhi:.1}" y1="{:.1}" y2="{:.1}"/></g>"##,
                cy - 5.0,
                cy + 5.0,
                cy - 5.0,
                cy + 5.0
            );
        }
    }
    let _ = write!(
        out,
        r##"<line x1="{x0:.1}" x2="{x0:.1}" y1="{plot_top:.1}" y2="{bottom:.1}" stroke="#333"/></svg>"##
    );
    out
}

fn legend(out: &mut String, series: &[Series], y0: f64) {
    for (i, s) in series.iter().enumerate() {
        let x = LEFT + (i % 3) as f64 * 200.0;
        let y = y0 + (i / 3) as f64 * 16.0;
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="4" fill="{}"/><text x="{:.1}" y="{:.1}" class="tk">{}</text>"#,
            y - 4.0,
            PALETTE[i % PALETTE.len()],
            x + 16.0,
            y,
            esc(&s.label)
        );
    }
}

/// Lines (`step` draws an empirical CDF as steps) over a shared x axis starting at 0.
pub fn lines(
    id: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    step: bool,
) -> String {
    let mut out = String::new();
    let rows = series.len().div_ceil(3) as f64;
    let height = H + (rows - 1.0).max(0.0) * 16.0;
    let bottom = H - 70.0;
    open(&mut out, id, title, height);
    let ymax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let y = y_axis(&mut out, ymax, bottom, y_label);
    let xmax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0, f64::max);
    let (xtop, xstep) = nice(xmax);
    let x = |v: f64| LEFT + (v / xtop).clamp(0.0, 1.0) * (W - LEFT - RIGHT);
    let mut v = 0.0;
    while v <= xtop + xstep * 0.01 {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="tk">{}</text>"#,
            x(v),
            bottom + 16.0,
            tick(v)
        );
        v += xstep;
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{bottom:.1}" y2="{bottom:.1}" stroke="#333"/><text x="{:.1}" y="{:.1}" text-anchor="middle" class="al">{}</text>"##,
        W - RIGHT,
        (LEFT + W - RIGHT) / 2.0,
        bottom + 34.0,
        esc(x_label)
    );
    for (i, s) in series.iter().enumerate() {
        let mut d = String::new();
        let mut prev_y: Option<f64> = None;
        for (k, (px, py)) in s.points.iter().enumerate() {
            let (sx, sy) = (x(*px), y(*py));
            if k == 0 {
                let start = if step { y(0.0) } else { sy };
                let _ = write!(d, "M{sx:.1},{start:.1}");
                if step {
                    let _ = write!(d, " L{sx:.1},{sy:.1}");
                }
            } else if step {
                let _ = write!(d, " L{sx:.1},{:.1} L{sx:.1},{sy:.1}", prev_y.unwrap_or(sy));
            } else {
                let _ = write!(d, " L{sx:.1},{sy:.1}");
            }
            prev_y = Some(sy);
        }
        let _ = write!(
            out,
            r#"<path class="series" d="{d}" fill="none" stroke="{}" stroke-width="2"><title>{}</title></path>"#,
            PALETTE[i % PALETTE.len()],
            esc(&s.label)
        );
    }
    legend(&mut out, series, bottom + 52.0);
    out.push_str("</svg>");
    out
}

/// A point of the scatter, with optional CI on y.
#[derive(Debug, Clone)]
pub struct Point {
    pub label: String,
    pub x: f64,
    pub y: f64,
    pub y_ci: Option<(f64, f64)>,
}

/// A scatter plot with labelled points and vertical CI whiskers.
pub fn scatter(id: &str, title: &str, x_label: &str, y_label: &str, points: &[Point]) -> String {
    let mut out = String::new();
    let bottom = H - 50.0;
    open(&mut out, id, title, H);
    let ymax = points
        .iter()
        .map(|p| p.y_ci.map_or(p.y, |c| c.1.max(p.y)))
        .fold(0.0, f64::max);
    let y = y_axis(&mut out, ymax, bottom, y_label);
    let xmax = points.iter().map(|p| p.x).fold(0.0, f64::max);
    let (xtop, xstep) = nice(xmax * 1.1);
    let x = |v: f64| LEFT + (v / xtop).clamp(0.0, 1.0) * (W - LEFT - RIGHT);
    let mut v = 0.0;
    while v <= xtop + xstep * 0.01 {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="tk">{}</text>"#,
            x(v),
            bottom + 16.0,
            tick(v)
        );
        v += xstep;
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{bottom:.1}" y2="{bottom:.1}" stroke="#333"/><text x="{:.1}" y="{:.1}" text-anchor="middle" class="al">{}</text>"##,
        W - RIGHT,
        (LEFT + W - RIGHT) / 2.0,
        bottom + 34.0,
        esc(x_label)
    );
    for (i, p) in points.iter().enumerate() {
        let (px, py) = (x(p.x), y(p.y));
        let color = PALETTE[i % PALETTE.len()];
        if let Some((lo, hi)) = p.y_ci {
            let _ = write!(
                out,
                r#"<line x1="{px:.1}" x2="{px:.1}" y1="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="1.5"/>"#,
                y(lo),
                y(hi)
            );
        }
        // Labels right of the point on the left half, left of it on the right half.
        let (lx, anchor) = if px > (LEFT + W - RIGHT) / 2.0 {
            (px - 8.0, "end")
        } else {
            (px + 8.0, "start")
        };
        let _ = write!(
            out,
            r#"<circle class="point" cx="{px:.1}" cy="{py:.1}" r="5" fill="{color}"><title>{}</title></circle><text x="{lx:.1}" y="{:.1}" text-anchor="{anchor}" class="tk">{}</text>"#,
            esc(&p.label),
            py - 6.0,
            esc(&p.label)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes_cover_the_data() {
        assert_eq!(nice(87.0), (100.0, 20.0));
        assert_eq!(nice(0.73), (0.8, 0.2));
        assert_eq!(nice(0.0), (1.0, 0.25));
        assert_eq!(nice(1200.0), (1250.0, 250.0));
    }

    #[test]
    fn charts_are_well_formed_svg() {
        let b = bars(
            "b",
            "TTFT <ms>",
            "ms",
            &[Bar {
                label: "a & b".into(),
                value: 10.0,
                ci: Some((8.0, 12.0)),
                color: PALETTE[0],
            }],
        );
        assert!(b.starts_with("<svg") && b.ends_with("</svg>"));
        assert!(b.contains("TTFT &lt;ms&gt;") && b.contains("a &amp; b"));
        let l = lines(
            "c",
            "cdf",
            "x",
            "y",
            &[Series {
                label: "s".into(),
                points: vec![(1.0, 0.5), (2.0, 1.0)],
            }],
            true,
        );
        assert!(l.contains("<path class=\"series\" d=\"M"));
    }
}
