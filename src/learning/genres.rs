//! Genres the shipped model does not know: added by an operator (config or
//! dashboard), usable in corrections at once, learned by the first retrain
//! after they have [`MIN_EXAMPLES`] corrected posters.

use serde::Serialize;
use utoipa::ToSchema;

use super::{Learning, LearningError};

/// Corrected posters a new genre needs before a retrain learns it: fewer
/// give a model that is mostly noise and a calibration with no positive.
pub const MIN_EXAMPLES: u64 = 20;
/// Genres a head can carry at most (the base features store a poster's
/// genres as a 32-bit mask, and a page of 32 genres is already long).
pub const MAX_GENRES: usize = 32;

pub use crate::config::check_genre_name as check_name;

/// An added genre and how far it is from being learned.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenreProgress {
    pub label: String,
    /// Corrected posters naming it.
    pub examples: u64,
    pub needed: u64,
    /// Whether the active head tags it.
    pub learned: bool,
}

impl Learning {
    /// The genres corrections may name now.
    pub fn known_genres(&self) -> std::sync::Arc<[String]> {
        self.0.genres.get()
    }

    /// Recompute the known genres: the active head's, then added ones.
    pub(super) async fn refresh_genres(&self) -> Result<(), LearningError> {
        let extra = self.0.store.call(|s| s.extra_genres()).await?;
        let mut labels = self.0.heads.active().head.labels();
        for g in extra {
            if !labels.contains(&g) {
                labels.push(g);
            }
        }
        self.0.genres.set(labels);
        Ok(())
    }

    /// Add a genre corrections may name; the next retrain with enough
    /// examples learns it.
    pub async fn add_genre(&self, label: &str) -> Result<Vec<GenreProgress>, LearningError> {
        check_name(label).map_err(LearningError::BadGenre)?;
        let known = self.known_genres();
        if known.iter().any(|g| g.eq_ignore_ascii_case(label)) {
            return Err(LearningError::BadGenre(format!(
                "{label} is already a genre"
            )));
        }
        if known.len() >= MAX_GENRES {
            return Err(LearningError::BadGenre(format!(
                "there are {MAX_GENRES} genres already, the most a head carries"
            )));
        }
        let owned = label.to_string();
        self.0
            .store
            .call(move |s| s.add_extra_genre(&owned, crate::poster::now_ms()))
            .await?;
        self.refresh_genres().await?;
        self.genre_progress().await
    }

    /// Every added genre with its examples.
    pub async fn genre_progress(&self) -> Result<Vec<GenreProgress>, LearningError> {
        let active = self.0.heads.active().head.labels();
        let counted = self
            .0
            .store
            .call(|s| {
                s.extra_genres()?
                    .into_iter()
                    .map(|g| s.genre_examples(&g).map(|n| (g, n)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(counted
            .into_iter()
            .map(|(label, examples)| GenreProgress {
                learned: active.contains(&label),
                label,
                examples,
                needed: MIN_EXAMPLES,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn genre_names() {
        for ok in ["Anime", "Sci-Fi", "Film-Noir", "Kids & Family", "Art house"] {
            assert!(super::check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", " Anime", "A,B", "A|B", "<b>", &"x".repeat(41)] {
            assert!(super::check_name(bad).is_err(), "{bad}");
        }
    }
}
