//! Corrections from every side: the dashboard, the API, the MQTT
//! `feedback` topic and bulk imports all come through [`record`], so a
//! correction means the same whoever sends it.
//!
//! A correction names a poster by id and either gives the genres it really
//! has, or confirms its tags as they are ("kept as tagged": the genres
//! stored are the tags of its latest classification, so a confirmation
//! counts like any correction). The genres must be the model's; the author
//! is free text, cut at 64 characters.

use crate::poster::{now_ms, PosterId};
use crate::store::{Feedback, NewFeedback, StoreError, StoreHandle};
use serde::Deserialize;

/// The longest `by` kept.
const MAX_AUTHOR_CHARS: usize = 64;
/// The largest import file (API and CLI): about 25,000 rows.
pub const MAX_IMPORT_BYTES: usize = 2 * 1024 * 1024;
/// The most rows one import takes; a larger file is refused whole.
pub const MAX_IMPORT_ROWS: usize = 25_000;
/// The largest MQTT feedback message read (a correction is a few hundred
/// bytes).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Where a correction came from (stored with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Dashboard,
    Api,
    Mqtt,
    Import,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Dashboard => "dashboard",
            Via::Api => "api",
            Via::Mqtt => "mqtt",
            Via::Import => "import",
        }
    }
}

/// A correction as it arrives: JSON on MQTT
/// (`{"id": "...", "genres": ["Drama"], "by": "..."}` or
/// `{"id": "...", "kept": true}`), or a row of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    pub id: String,
    #[serde(default)]
    pub genres: Vec<String>,
    /// The tags are right as they are.
    #[serde(default)]
    pub kept: bool,
    #[serde(default)]
    pub by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("`{0}` is not a poster id (the 64-hex sha256 of the image)")]
    BadId(String),
    #[error("unknown genre `{genre}`; choose among {known}")]
    UnknownGenre { genre: String, known: String },
    #[error(
        "choose at least one genre the poster has, or send \"kept\": true to confirm its tags"
    )]
    NoGenres,
    #[error("send either genres or \"kept\": true, not both")]
    Both,
    #[error("poster {0} is not in the history (never classified here, or forgotten by retention)")]
    UnknownPoster(String),
    #[error("poster {0} has no tags to keep: send the genres it has")]
    NothingToKeep(String),
    #[error("{0} rows is over the {MAX_IMPORT_ROWS}-row limit of one import: split the file")]
    TooManyRows(usize),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl FeedbackError {
    /// The sender's mistake (400/404), as against the device's (500).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, FeedbackError::Store(_))
    }
}

/// A correction checked against the model's genres, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub poster_id: PosterId,
    /// Empty when `kept`: the tags are read when it is stored.
    pub genres: Vec<String>,
    pub kept: bool,
    pub by: Option<String>,
}

/// Check `correction` against the model's `labels`: a valid id, known
/// genres (trimmed, each once), genres or `kept` but not both.
pub fn check(labels: &[String], correction: Correction) -> Result<Checked, FeedbackError> {
    let poster_id = PosterId::parse(correction.id.trim())
        .map_err(|_| FeedbackError::BadId(crate::logging::safe(&correction.id)))?;
    let mut genres: Vec<String> = Vec::new();
    for genre in correction.genres {
        let genre = genre.trim().to_owned();
        if !labels.contains(&genre) {
            return Err(FeedbackError::UnknownGenre {
                genre: crate::logging::safe(&genre),
                known: labels.join(", "),
            });
        }
        if !genres.contains(&genre) {
            genres.push(genre);
        }
    }
    match (genres.is_empty(), correction.kept) {
        (true, false) => return Err(FeedbackError::NoGenres),
        (false, true) => return Err(FeedbackError::Both),
        _ => {}
    }
    let by = correction
        .by
        .map(|b| b.trim().chars().take(MAX_AUTHOR_CHARS).collect::<String>())
        .filter(|b| !b.is_empty());
    Ok(Checked {
        poster_id,
        genres,
        kept: correction.kept,
        by,
    })
}

/// Check and store one correction.
pub async fn record(
    store: &StoreHandle,
    labels: &[String],
    correction: Correction,
    via: Via,
) -> Result<Feedback, FeedbackError> {
    let checked = check(labels, correction)?;
    store
        .call(move |s| Ok(store_checked(s, checked, via)))
        .await?
}

/// Store a checked correction; a confirmation takes the poster's latest
/// tags in the same call, so it keeps what the person saw.
fn store_checked(
    store: &crate::store::Store,
    checked: Checked,
    via: Via,
) -> Result<Feedback, FeedbackError> {
    let id = checked.poster_id.to_string();
    let genres = if checked.kept {
        match store.latest_tags(&checked.poster_id)? {
            None => return Err(FeedbackError::UnknownPoster(id)),
            Some(tags) if tags.is_empty() => return Err(FeedbackError::NothingToKeep(id)),
            Some(tags) => tags,
        }
    } else {
        checked.genres
    };
    let feedback = NewFeedback {
        poster_id: checked.poster_id,
        genres,
        by: checked.by,
        created_at_ms: now_ms(),
        via: via.as_str(),
        kept: checked.kept,
    };
    match store.add_feedback(&feedback) {
        Ok(row) => Ok(Feedback {
            id: row,
            poster_id: feedback.poster_id,
            genres: feedback.genres,
            by: feedback.by,
            created_at_ms: feedback.created_at_ms,
            via: feedback.via.to_owned(),
            kept: feedback.kept,
        }),
        Err(StoreError::UnknownPoster(_)) => Err(FeedbackError::UnknownPoster(id)),
        Err(err) => Err(err.into()),
    }
}

/// A row an import refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Refused {
    /// 1-based line of the file.
    pub line: usize,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Corrections stored (confirmations included).
    pub imported: usize,
    /// Of those, confirmations of the tags ("kept").
    pub kept: usize,
    pub refused: Vec<Refused>,
}

/// The rows of an import file: `id,genres[,by]` with the genres separated
/// by `|` (the labelled sets' format), or the word `kept` to confirm the
/// tags. A header line starting with `id` and blank or `#` lines are
/// skipped. Each row is parsed alone: a bad row is reported, not fatal.
pub fn parse_import(text: &str) -> Vec<(usize, Result<Correction, String>)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(n, line)| {
            !(line.is_empty()
                || line.starts_with('#')
                || (*n == 1 && line.to_ascii_lowercase().starts_with("id,")))
        })
        .map(|(n, line)| (n, parse_row(line)))
        .collect()
}

fn parse_row(line: &str) -> Result<Correction, String> {
    let mut fields = line.splitn(3, ',').map(|f| f.trim().trim_matches('"'));
    let id = fields.next().unwrap_or_default();
    let genres = fields
        .next()
        .ok_or("expected `id,Genre|Genre[,by]` (or `id,kept`)")?;
    let by = fields.next().map(str::to_owned).filter(|b| !b.is_empty());
    let kept = genres.eq_ignore_ascii_case("kept");
    Ok(Correction {
        id: id.to_owned(),
        genres: if kept {
            Vec::new()
        } else {
            genres
                .split('|')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect()
        },
        kept,
        by,
    })
}

/// Store every valid row of an import file, in one store call (one
/// transaction per row: a bad row leaves the others in place).
pub async fn import(
    store: &StoreHandle,
    labels: &[String],
    text: &str,
    via: Via,
) -> Result<ImportReport, FeedbackError> {
    let rows = parse_import(text);
    if rows.len() > MAX_IMPORT_ROWS {
        return Err(FeedbackError::TooManyRows(rows.len()));
    }
    let mut report = ImportReport::default();
    let mut checked = Vec::new();
    for (line, row) in rows {
        match row.and_then(|c| check(labels, c).map_err(|e| e.to_string())) {
            Ok(c) => checked.push((line, c)),
            Err(reason) => report.refused.push(Refused { line, reason }),
        }
    }
    let stored = store
        .call(move |s| {
            Ok(checked
                .into_iter()
                .map(|(line, c)| (line, store_checked(s, c, via)))
                .collect::<Vec<_>>())
        })
        .await?;
    for (line, outcome) in stored {
        match outcome {
            Ok(feedback) => {
                report.imported += 1;
                report.kept += usize::from(feedback.kept);
            }
            Err(err) => report.refused.push(Refused {
                line,
                reason: err.to_string(),
            }),
        }
    }
    report.refused.sort_by_key(|r| r.line);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["Action", "Comedy", "Drama"].map(String::from).to_vec()
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_correction_is_checked_against_the_genres() {
        let ok = check(
            &labels(),
            Correction {
                id: ID.into(),
                genres: vec![" Drama".into(), "Comedy".into(), "Drama".into()],
                by: Some(format!("  {}", "x".repeat(100))),
                ..Correction::default()
            },
        )
        .unwrap();
        assert_eq!(ok.genres, ["Drama", "Comedy"]);
        assert_eq!(ok.by.unwrap().len(), MAX_AUTHOR_CHARS);
        let bad = |c: Correction| check(&labels(), c).unwrap_err().to_string();
        assert!(bad(Correction {
            id: ID.into(),
            genres: vec!["Western".into()],
            ..Correction::default()
        })
        .contains("unknown genre `Western`"));
        assert!(bad(Correction {
            id: ID.into(),
            ..Correction::default()
        })
        .contains("at least one genre"));
        assert!(bad(Correction {
            id: ID.into(),
            genres: vec!["Drama".into()],
            kept: true,
            ..Correction::default()
        })
        .contains("not both"));
        assert!(bad(Correction {
            id: "nope\n\u{1b}[31m".into(),
            genres: vec!["Drama".into()],
            ..Correction::default()
        })
        .contains("not a poster id"));
        let kept = check(
            &labels(),
            Correction {
                id: ID.into(),
                kept: true,
                ..Correction::default()
            },
        )
        .unwrap();
        assert!(kept.kept && kept.genres.is_empty());
    }

    #[test]
    fn mqtt_payloads_are_strict_json() {
        let c: Correction =
            serde_json::from_str(&format!(r#"{{"id":"{ID}","genres":["Drama"],"by":"nr"}}"#))
                .unwrap();
        assert_eq!(c.genres, ["Drama"]);
        assert!(serde_json::from_str::<Correction>(r#"{"genres":["Drama"]}"#).is_err());
        assert!(
            serde_json::from_str::<Correction>(&format!(r#"{{"id":"{ID}","genre":"x"}}"#)).is_err()
        );
    }

    #[test]
    fn import_rows_parse_alone() {
        let text = format!(
            "id,genres,by\n{ID},Drama|Comedy,ops\n\n# a comment\n{ID},kept\nnot-a-row\n{ID},Drama\n"
        );
        let rows = parse_import(&text);
        let lines: Vec<usize> = rows.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [2, 5, 6, 7]);
        let first = rows[0].1.as_ref().unwrap();
        assert_eq!(first.genres, ["Drama", "Comedy"]);
        assert_eq!(first.by.as_deref(), Some("ops"));
        assert!(rows[1].1.as_ref().unwrap().kept);
        assert!(rows[2].1.is_err());
        assert!(rows[3].1.as_ref().unwrap().by.is_none());
    }
}
