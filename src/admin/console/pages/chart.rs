//! The per-minute chart as server-rendered SVG: one polyline per counted
//! event kind, over the last hour or the last 24 hours.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::super::Console;
use crate::admin::settings::Role;
use crate::observe::recent;

/// accepted, delivered, deferred, refused.
pub const COLOURS: [&str; 4] = ["#1f77b4", "#2ca02c", "#ff7f0e", "#d62728"];

#[derive(Deserialize)]
pub struct ChartQuery {
    range: Option<String>,
}

pub async fn chart(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<ChartQuery>,
) -> Response {
    if let Err(r) = c.auth(&headers, Role::Viewer) {
        return r;
    }
    let minutes = if q.range.as_deref() == Some("day") {
        recent::MINUTES
    } else {
        60
    };
    let svg = render(&recent::per_minute(minutes), minutes == 60);
    ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
}

/// The SVG for `series` (oldest minute first).
pub fn render(series: &[[u64; 4]], hour: bool) -> String {
    let (w, h, pad) = (720.0f64, 200.0f64, 30.0f64);
    let max = series
        .iter()
        .flat_map(|c| c.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let n = series.len().max(2) as f64;
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / (n - 1.0);
    let y = |v: u64| h - pad - (h - 2.0 * pad) * v as f64 / max as f64;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img"><rect width="{w}" height="{h}" fill="white"/>"#
    );
    out += &format!(
        r##"<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="#999"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" stroke="#999"/><text x="2" y="{t}" font-size="11">{max}</text><text x="2" y="{b}" font-size="11">0</text><text x="{pad}" y="{l}" font-size="11">{ago}</text><text x="{e}" y="{l}" font-size="11">now</text>"##,
        b = h - pad,
        r = w - pad,
        t = pad + 4.0,
        l = h - 8.0,
        e = w - pad - 20.0,
        ago = if hour { "-60 min" } else { "-24 h" },
    );
    for (k, colour) in COLOURS.iter().enumerate() {
        let points: Vec<String> = series
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:.1},{:.1}", x(i), y(c[k])))
            .collect();
        out += &format!(
            r#"<polyline class="{}" fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            recent::COUNTED[k],
            points.join(" ")
        );
    }
    out += "</svg>";
    out
}
