//! The page shell every dashboard page shares, and small components.

use super::auth::Access;
use super::WebState;
use crate::model::GenreScore;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

/// The navigation, in order: `(path, label)`.
pub const NAV: [(&str, &str); 9] = [
    ("/", "Live"),
    ("/tag", "Tag a poster"),
    ("/history", "History"),
    ("/insights", "Insights"),
    ("/accuracy", "Accuracy"),
    ("/map", "Poster map"),
    ("/impact", "Business impact"),
    ("/model", "Model"),
    ("/cameras", "Cameras"),
];

/// A whole page.
pub fn page(
    state: &WebState,
    access: &Access,
    active: &str,
    title: &str,
    body: Markup,
) -> Response {
    page_with_status(state, access, active, title, body, StatusCode::OK)
}

pub fn page_with_status(
    state: &WebState,
    access: &Access,
    active: &str,
    title: &str,
    body: Markup,
    status: StatusCode,
) -> Response {
    let version = super::assets::version();
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(csrf) = access.csrf() {
                    meta name="csrf" content=(csrf);
                }
                title { (title) " · Marquee " (state.device_id.as_ref()) }
                link rel="stylesheet" href={ "/assets/app.css?v=" (version) };
                script src={ "/assets/app.js?v=" (version) } defer {}
            }
            body {
                header {
                    div.top {
                        a.brand href="/" { "Marquee" }
                        span.muted { (state.device_id.as_ref()) }
                        div.who {
                            @match access {
                                Access::Admin { .. } if access.logged_in() => {
                                    form method="post" action="/logout" {
                                        @if let Some(csrf) = access.csrf() { input type="hidden" name="csrf" value=(csrf); }
                                        button.secondary type="submit" { "Log out" }
                                    }
                                }
                                Access::Reader => {
                                    span { "read-only" }
                                    a href="/login" { "Log in" }
                                }
                                _ => {}
                            }
                        }
                    }
                    nav {
                        @for (path, label) in NAV {
                            a href=(path) class=[(path == active).then_some("on")] { (label) }
                        }
                    }
                }
                main {
                    @if !state.auth.required() && !state.listen_loopback {
                        div.banner.bad {
                            "No password is set and the dashboard listens beyond this device: anyone on the network can change it. Set dashboard.password_hash ("
                            code { "marquee dashboard hash-password" } ")."
                        }
                    }
                    (body)
                }
            }
        }
    };
    html_response(status, markup)
}

/// An HTML error page without the navigation (for answers given before
/// access is known: the guard's refusals, unknown paths).
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    html_response(
        status,
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · Marquee" }
                    link rel="stylesheet" href={ "/assets/app.css?v=" (super::assets::version()) };
                }
                body { main {
                    h1 { (title) }
                    div.banner.bad { (message) }
                    p { a href="/" { "Back to the dashboard" } }
                } }
            }
        },
    )
}

pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Percent with no decimals.
pub fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// A figure that may be missing (no data yet).
pub fn opt_pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

pub fn opt3(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.3}"))
}

/// A moment on a page: written in UTC by the server (unambiguous, and what a
/// page without scripts shows), shown in the viewer's local time by app.js,
/// which reads the `datetime` attribute.
pub fn time(ms: i64) -> Markup {
    let (date, clock) = utc_parts(ms);
    html! { time datetime={ (date) "T" (clock) "Z" } { (date) " " (clock) " UTC" } }
}

/// `("YYYY-MM-DD", "HH:MM")` in UTC.
fn utc_parts(ms: i64) -> (String, String) {
    let secs = ms.div_euclid(1000);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}", rem / 3600, (rem % 3600) / 60),
    )
}

/// Days since 1970-01-01 to a (year, month, day) date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Tags (filled) then the top-3 with scores (outlined).
pub fn tags(tags: &[String], top3: &[GenreScore]) -> Markup {
    html! {
        div.tags {
            @for t in tags { span.tag { (t) } }
            @for g in top3 { span class="tag top" { (g.label) " " (pct(f64::from(g.score))) } }
        }
    }
}

/// Every genre's score as a bar, with its threshold marked.
pub fn score_bars(
    genres: &[GenreScore],
    tags: &[String],
    thresholds: &[super::data::GenreThreshold],
) -> Markup {
    html! {
        div.bars {
            @for g in genres {
                @let tagged = tags.contains(&g.label);
                @let thr = thresholds.iter().find(|t| t.label == g.label).map(|t| t.threshold);
                div.row {
                    span { (g.label) }
                    span.track {
                        span class={ "fill" @if tagged { " tagged" } } style={ "width:" (format!("{:.1}", g.score * 100.0)) "%" } {}
                        @if let Some(t) = thr {
                            span.thr style={ "left:" (format!("{:.1}", t * 100.0)) "%" } title={ "threshold " (format!("{t:.2}")) } {}
                        }
                    }
                    span.n { (pct(f64::from(g.score))) }
                }
            }
        }
    }
}

/// A poster's thumbnail, lazily loaded.
pub fn thumb(id: &str) -> Markup {
    html! {
        img.thumb src={ "/api/v1/posters/" (id) "/thumbnail" } alt="poster thumbnail" loading="lazy" width="72" height="103";
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_times() {
        let text = |ms| super::time(ms).into_string();
        assert_eq!(
            text(0),
            r#"<time datetime="1970-01-01T00:00Z">1970-01-01 00:00 UTC</time>"#
        );
        assert!(text(1_763_769_600_000).contains(">2025-11-22 00:00 UTC<"));
        assert!(text(951_782_400_000 + 59_000 + 3_600_000).contains(">2000-02-29 01:00 UTC<"));
    }
}
