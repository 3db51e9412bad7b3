//! Charts drawn on the server as inline SVG: no script, no outside asset,
//! sharp on a phone (every chart scales with its `viewBox`). Colours come
//! from the stylesheet's classes so the charts follow the page's theme.

use maud::{html, Markup};

/// Cluster colours, by index (`.k0` .. `.k7` in the stylesheet).
pub const CLUSTER_CLASSES: usize = 8;

/// Whole units: enough on a 400-wide map, and a third shorter markup.
fn fmt0(v: f64) -> String {
    format!("{v:.0}")
}

fn fmt1(v: f64) -> String {
    format!("{v:.1}")
}

/// Horizontal bars: one row per `(label, value)`, value in `[0, max]`,
/// `text` written after the bar. Optional second value drawn as a thin
/// marker bar (e.g. the validation mix beside today's).
pub fn hbars(rows: &[(String, f64, String, Option<f64>)], max: f64, title: &str) -> Markup {
    let row_h = 22.0;
    let label_w = 110.0;
    let bar_w = 190.0;
    let height = row_h * rows.len() as f64 + 4.0;
    let max = if max > 0.0 { max } else { 1.0 };
    html! {
        svg class="chart" viewBox={ "0 0 380 " (fmt1(height)) } role="img" aria-label=(title) {
            title { (title) }
            @for (i, (label, value, text, marker)) in rows.iter().enumerate() {
                @let y = i as f64 * row_h + 2.0;
                text x=(fmt1(label_w - 6.0)) y=(fmt1(y + 15.0)) text-anchor="end" class="lbl" { (label) }
                rect x=(fmt1(label_w)) y=(fmt1(y + 3.0)) width=(fmt1((value / max).clamp(0.0, 1.0) * bar_w)) height="14" class="bar" {}
                @if let Some(m) = marker {
                    rect x=(fmt1(label_w)) y=(fmt1(y + 17.0)) width=(fmt1((m / max).clamp(0.0, 1.0) * bar_w)) height="3" class="ref" {}
                }
                text x=(fmt1(label_w + bar_w + 6.0)) y=(fmt1(y + 15.0)) class="val" { (text) }
            }
        }
    }
}

/// Vertical bars over equal bins (the confidence histogram).
pub fn histogram(counts: &[u64], first_label: &str, last_label: &str, title: &str) -> Markup {
    let (w, h, pad) = (360.0, 150.0, 20.0);
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bw = (w - 2.0 * pad) / counts.len().max(1) as f64;
    html! {
        svg class="chart" viewBox={ "0 0 " (w) " " (h + 20.0) } role="img" aria-label=(title) {
            title { (title) }
            @for (i, &c) in counts.iter().enumerate() {
                @let bh = c as f64 / max * (h - pad);
                rect x=(fmt1(pad + i as f64 * bw + 1.0)) y=(fmt1(h - bh)) width=(fmt1(bw - 2.0)) height=(fmt1(bh)) class="bar" {
                    title { (c) }
                }
                @if c > 0 {
                    text x=(fmt1(pad + i as f64 * bw + bw / 2.0)) y=(fmt1(h - bh - 3.0)) text-anchor="middle" class="val" { (c) }
                }
            }
            line x1=(pad) y1=(h) x2=(w - pad) y2=(h) class="axis" {}
            text x=(pad) y=(h + 15.0) class="lbl" { (first_label) }
            text x=(w - pad) y=(h + 15.0) text-anchor="end" class="lbl" { (last_label) }
        }
    }
}

/// A line over evenly spaced points, with its first and last x labels.
/// `marker`: an x index to highlight (e.g. the chosen threshold).
pub fn line(
    values: &[f64],
    first_label: &str,
    last_label: &str,
    marker: Option<usize>,
    title: &str,
) -> Markup {
    let (w, h, pad) = (360.0, 140.0, 24.0);
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min).min(0.0);
    let span = if max > min { max - min } else { 1.0 };
    let n = values.len();
    let x_at = |i: usize| pad + (w - 2.0 * pad) * i as f64 / (n.max(2) - 1) as f64;
    let y_at = |v: f64| h - (v - min) / span * (h - pad);
    let points: String = values
        .iter()
        .enumerate()
        .map(|(i, &v)| format!("{},{}", fmt1(x_at(i)), fmt1(y_at(v))))
        .collect::<Vec<_>>()
        .join(" ");
    html! {
        svg class="chart" viewBox={ "0 0 " (w) " " (h + 20.0) } role="img" aria-label=(title) {
            title { (title) }
            line x1=(pad) y1=(fmt1(y_at(0.0))) x2=(w - pad) y2=(fmt1(y_at(0.0))) class="axis" {}
            @if n == 1 {
                circle cx=(fmt1(x_at(0))) cy=(fmt1(y_at(values[0]))) r="3" class="pt" {}
            } @else {
                polyline points=(points) class="ln" {}
            }
            @if let Some(i) = marker.filter(|&i| i < n) {
                circle cx=(fmt1(x_at(i))) cy=(fmt1(y_at(values[i]))) r="5" class="mark" {}
            }
            text x=(pad) y=(h + 15.0) class="lbl" { (first_label) }
            text x=(w - pad) y=(h + 15.0) text-anchor="end" class="lbl" { (last_label) }
        }
    }
}

/// Width of one character of a `.lbl` label (11 px sans-serif), generous.
const LABEL_CHAR_WIDTH: f64 = 7.0;

/// A matrix of counts as shaded cells with row and column labels
/// (co-occurrence, confusion). `cells[row][col]`.
pub fn heatmap(
    labels: &[String],
    cells: &[Vec<u64>],
    row_title: &str,
    col_title: &str,
    title: &str,
) -> Markup {
    let n = labels.len();
    let cell = 30.0;
    let left = 90.0;
    let top = 80.0;
    let max = cells.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    // Column labels lean right from the top of their column: the last ones
    // reach past the grid by their length times cos(55°).
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let lean = (longest as f64 * LABEL_CHAR_WIDTH * 55f64.to_radians().cos()).ceil();
    let size_w = left + cell * n as f64 + 4.0 + lean;
    let size_h = top + cell * n as f64 + 4.0;
    html! {
        svg class="chart heat" viewBox={ "0 0 " (fmt1(size_w)) " " (fmt1(size_h)) } role="img" aria-label=(title) {
            title { (title) }
            text x="2" y="12" class="lbl" { (row_title) " ↓ / " (col_title) " →" }
            @for (j, label) in labels.iter().enumerate() {
                text transform={ "translate(" (fmt1(left + cell * j as f64 + cell / 2.0 + 4.0)) "," (fmt1(top - 4.0)) ") rotate(-55)" } class="lbl" { (label) }
            }
            @for (i, label) in labels.iter().enumerate() {
                text x=(fmt1(left - 4.0)) y=(fmt1(top + cell * i as f64 + cell / 2.0 + 4.0)) text-anchor="end" class="lbl" { (label) }
                @for (j, &v) in cells.get(i).map(|r| r.as_slice()).unwrap_or(&[]).iter().enumerate() {
                    @let shade = (v as f64 / max * 0.9 + if v > 0 { 0.1 } else { 0.0 }).min(1.0);
                    rect x=(fmt1(left + cell * j as f64)) y=(fmt1(top + cell * i as f64)) width=(cell - 1.0) height=(cell - 1.0) class="cell" fill-opacity=(format!("{shade:.2}")) {
                        title { (labels[i]) " / " (labels.get(j).map(String::as_str).unwrap_or("")) ": " (v) }
                    }
                    text x=(fmt1(left + cell * j as f64 + cell / 2.0)) y=(fmt1(top + cell * i as f64 + cell / 2.0 + 4.0)) text-anchor="middle" class={ "num" @if shade > 0.55 { " inv" } } { (v) }
                }
            }
        }
    }
}

/// One point on the poster map.
pub struct MapDot<'a> {
    pub x: f64,
    pub y: f64,
    pub cluster: usize,
    pub outlier: bool,
    /// Linked to the poster's page (outliers only, to keep the page light).
    pub href: Option<&'a str>,
}

/// The poster map: dots coloured by cluster, outliers ringed and linked.
pub fn scatter(dots: &[MapDot<'_>], title: &str) -> Markup {
    let (w, h, pad) = (400.0, 300.0, 10.0);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for d in dots {
        x0 = x0.min(d.x);
        x1 = x1.max(d.x);
        y0 = y0.min(d.y);
        y1 = y1.max(d.y);
    }
    let sx = if x1 > x0 {
        (w - 2.0 * pad) / (x1 - x0)
    } else {
        1.0
    };
    let sy = if y1 > y0 {
        (h - 2.0 * pad) / (y1 - y0)
    } else {
        1.0
    };
    let px = |x: f64| pad + (x - x0) * sx;
    let py = |y: f64| h - pad - (y - y0) * sy;
    html! {
        svg class="chart map" viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(title) {
            title { (title) }
            @for d in dots.iter().filter(|d| !d.outlier) {
                circle cx=(fmt0(px(d.x))) cy=(fmt0(py(d.y))) r="2.5" class={ "k" (d.cluster % CLUSTER_CLASSES) } {}
            }
            @for d in dots.iter().filter(|d| d.outlier) {
                @if let Some(href) = d.href {
                    a href=(href) {
                        circle cx=(fmt1(px(d.x))) cy=(fmt1(py(d.y))) r="5" class="out" { title { "outlier: open the poster" } }
                    }
                } @else {
                    circle cx=(fmt1(px(d.x))) cy=(fmt1(py(d.y))) r="5" class="out" {}
                }
            }
        }
    }
}
