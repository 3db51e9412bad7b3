//! The Model page's learning part: retrain with progress, the candidate
//! beside the active head, and every head with promote / roll back / export.
//! The buttons are driven by app.js against the JSON API.

use crate::learning::genres::{GenreProgress, MIN_EXAMPLES};
use crate::learning::{HeadComparison, JobState, JobStatus};
use crate::store::{HeadRow, HeadState};
use crate::web::auth::Access;
use crate::web::layout::{opt3, thumb, time};
use maud::{html, Markup};

pub(super) fn learning(
    access: &Access,
    heads: &[HeadRow],
    active_name: &str,
    job: &JobStatus,
    compare: Option<&HeadComparison>,
    genres: &[GenreProgress],
) -> Markup {
    let f1 = |h: &HeadRow| {
        h.metrics
            .get("model")
            .and_then(|m| m.get("micro_f1"))
            .and_then(serde_json::Value::as_f64)
    };
    html! {
        div.card id="learning" {
            h2 { "Learning from corrections" }
            p.muted {
                "Tags come from " strong id="active-head" { (active_name) } ". A retrain fits a candidate head on this device's corrections plus the shipped training posters; the candidate scores every new poster in the shadow (never published) until you promote it."
            }
            @if access.can_write() {
                p {
                    button id="retrain" type="button" disabled[job.state == JobState::Running] { "Retrain now" }
                    " "
                    button id="retrain-cancel" type="button" hidden[job.state != JobState::Running] { "Cancel" }
                }
            }
            p id="retrain-status" data-state=(state_word(job.state)) { (job_line(job)) }
            progress id="retrain-progress" max=(job.genres_total.max(1)) value=(job.genres_done) hidden[job.state != JobState::Running] {}
            h3 { "Genres added here" }
            @if genres.is_empty() {
                p.muted { "None yet. Add a genre the shipped model does not know; corrections can name it at once, and a retrain learns it once " (MIN_EXAMPLES) " corrected posters have it." }
            } @else {
                table id="extra-genres" {
                    tr { th { "Genre" } th { "Status" } }
                    @for g in genres {
                        tr {
                            td { (g.label) }
                            td {
                                @if g.learned { "learned" }
                                @else if g.examples >= g.needed { "ready: " (g.examples) " examples, learned at the next retrain" }
                                @else { "learning " (g.examples) "/" (g.needed) }
                            }
                        }
                    }
                }
            }
            @if access.can_write() {
                form id="add-genre" {
                    label { "New genre " input type="text" name="label" maxlength="40" required; }
                    " " button type="submit" { "Add genre" }
                }
            }
        }
        @if let Some(c) = compare {
            (comparison(access, c))
        }
        div.card.scroll {
            h2 { "Heads" }
            p id="promote-result" role="status" {}
            table id="heads" {
                tr { th { "Head" } th { "State" } th { "Origin" } th.n { "Corrections" } th.n { "Micro F1" } th { "Made" } th {} }
                @for h in heads {
                    tr data-head=(h.id) data-state=(state_name(h.state)) {
                        td { "head-" (h.id) @if let Some(p) = h.parent { span.muted { " ← head-" (p) } } }
                        td { (state_name(h.state)) }
                        td { (h.origin) }
                        td.n { (h.corrections) }
                        td.n { (opt3(f1(h))) }
                        td { (time(h.created_at_ms)) }
                        td {
                            @if access.can_write() && h.state != HeadState::Active {
                                button.promote type="button" data-head=(h.id) {
                                    @if h.state == HeadState::Candidate { "Promote" } @else { "Roll back to this" }
                                }
                                " "
                            }
                            a href={ "/api/v1/model/heads/" (h.id) "/export" } download { "Export" }
                        }
                    }
                }
            }
            @if access.can_write() {
                form id="head-import" {
                    label { "Import a head file " input type="file" name="head" accept="application/json,.json"; }
                    " " button type="submit" { "Import as candidate" }
                }
            }
        }
    }
}

fn comparison(access: &Access, c: &HeadComparison) -> Markup {
    let held = &c.held_out;
    let metric = |side: &Option<crate::learning::retrain::HeldOut>,
                  f: fn(&crate::model::evaluation::Summary) -> f64| {
        side.as_ref().map(|h| f(&h.summary))
    };
    let rows: [(&str, SummaryField); 5] = [
        ("Micro F1", |s| s.micro_f1),
        ("Micro precision", |s| s.micro_precision),
        ("Micro recall", |s| s.micro_recall),
        ("Best genre right (hit@1)", |s| s.hit_at_1),
        ("Mean ROC-AUC", |s| s.mean_roc_auc),
    ];
    let per_genre = |side: &Option<crate::learning::retrain::HeldOut>, label: &str| {
        side.as_ref()
            .and_then(|h| h.per_genre.iter().find(|g| g.label == label))
            .map(|g| (g.f1, g.support))
    };
    let labels: Vec<String> = held
        .candidate
        .as_ref()
        .map(|h| h.per_genre.iter().map(|g| g.label.clone()).collect())
        .unwrap_or_default();
    let shadow = &c.shadow;
    html! {
        div.card id="compare" data-candidate=(c.candidate_id) {
            h2 { "Candidate " (c.candidate) " beside " (c.active) }
            @if c.too_few {
                p.warn id="few-held-out" { "Only " (held.held_out) " held-out corrections: one poster moves these figures by several points. Correct more posters before trusting the comparison." }
            }
            @if c.candidate_worse {
                p.bad id="worse" { "The candidate scores worse than the active head on the held-out corrections: promoting it needs a forced promotion." }
            }
            div.two {
                div {
                    h3 { "On " (held.held_out) " held-out corrections" }
                    table {
                        tr { th {} th.n { "Active" } th.n { "Candidate" } }
                        @for (label, f) in rows {
                            tr { td { (label) } td.n { (opt3(metric(&held.parent, f))) } td.n { (opt3(metric(&held.candidate, f))) } }
                        }
                    }
                }
                div {
                    h3 { "On live posters (shadow)" }
                    table {
                        tr { th { "Posters scored by both" } td.n id="shadow-posters" { (shadow.posters) } }
                        tr { th { "Same tags" } td.n { (shadow.same_tags) } }
                        tr { th { "Agreement (tag overlap)" } td.n id="shadow-agreement" { (format!("{:.3}", shadow.agreement)) } }
                    }
                }
            }
            @if !labels.is_empty() {
                details {
                    summary { "F1 per genre (held-out corrections)" }
                    table {
                        tr { th { "Genre" } th.n { "Active" } th.n { "Candidate" } th.n { "Support" } }
                        @for l in &labels {
                            @let a = per_genre(&held.parent, l);
                            @let b = per_genre(&held.candidate, l);
                            tr { td { (l) } td.n { (opt3(a.map(|x| x.0))) } td.n { (opt3(b.map(|x| x.0))) } td.n { (b.map_or(0, |x| x.1)) } }
                        }
                    }
                }
            }
            @if !shadow.disagreements.is_empty() {
                h3 { "Where they disagree most" }
                table id="disagreements" {
                    tr { th {} th { "Active tags" } th { "Candidate tags" } th.n { "Overlap" } }
                    @for d in &shadow.disagreements {
                        tr {
                            td { a href={ "/poster/" (d.poster_id) } { (thumb(&d.poster_id)) } }
                            td { (d.active_tags.join(", ")) }
                            td { (d.candidate_tags.join(", ")) }
                            td.n { (format!("{:.2}", d.overlap)) }
                        }
                    }
                }
            }
            @if access.can_write() {
                p {
                    button.promote type="button" data-head=(c.candidate_id) { "Promote candidate" }
                    " "
                    button.promote type="button" data-head=(c.candidate_id) data-force="1" hidden[!c.candidate_worse] { "Promote anyway (force)" }
                    " "
                    button id="discard-candidate" type="button" { "Discard candidate" }
                }
            }
        }
    }
}

/// One figure of a held-out summary.
type SummaryField = fn(&crate::model::evaluation::Summary) -> f64;

fn state_name(s: HeadState) -> &'static str {
    match s {
        HeadState::Active => "active",
        HeadState::Candidate => "candidate",
        HeadState::Retired => "retired",
    }
}

fn state_word(s: JobState) -> &'static str {
    match s {
        JobState::Idle => "idle",
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// One line about the running or last retrain (app.js writes the same).
fn job_line(job: &JobStatus) -> String {
    match job.state {
        JobState::Idle => "No retrain since the daemon started.".into(),
        JobState::Running => format!(
            "Retraining: {} ({} of {} genres)…",
            job.phase, job.genres_done, job.genres_total
        ),
        JobState::Done => format!(
            "Last retrain made head-{} from {} corrections and {} shipped posters in {:.1} s.",
            job.head_id.unwrap_or_default(),
            job.corrections,
            job.base_posters,
            job.seconds.unwrap_or_default()
        ),
        JobState::Failed => format!(
            "Last retrain failed: {}",
            job.error.as_deref().unwrap_or("unknown error")
        ),
        JobState::Cancelled => "Last retrain was cancelled.".into(),
    }
}
