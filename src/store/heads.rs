//! Genre heads (versions, states, promotion) and the candidate's shadow
//! scores.

use super::error::{Context, StoreError};
use super::Store;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HeadState {
    Active,
    Candidate,
    Retired,
}

impl HeadState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Candidate => "candidate",
            Self::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "active" => Ok(Self::Active),
            "candidate" => Ok(Self::Candidate),
            "retired" => Ok(Self::Retired),
            other => Err(StoreError::Corrupt {
                what: "head state",
                key: other.to_string(),
                detail: "not active, candidate or retired".into(),
            }),
        }
    }
}

/// A head to register.
#[derive(Debug, Clone)]
pub struct NewHead {
    pub parent: Option<i64>,
    pub state: HeadState,
    /// `shipped`, `retrain` or `import`.
    pub origin: &'static str,
    /// sha256 of the backbone file whose features it was trained on.
    pub backbone: String,
    pub feature_dim: usize,
    pub labels: Vec<String>,
    pub corrections: u64,
    pub base_posters: u64,
    pub metrics: serde_json::Value,
    pub sha256: String,
    /// The head as JSON (`GenreHead`).
    pub head: String,
    pub created_at_ms: i64,
}

/// A stored head without its weights.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HeadRow {
    pub id: i64,
    pub parent: Option<i64>,
    pub created_at_ms: i64,
    pub state: HeadState,
    pub origin: String,
    pub backbone: String,
    pub feature_dim: usize,
    pub labels: Vec<String>,
    pub corrections: u64,
    pub base_posters: u64,
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    pub sha256: String,
}

/// The candidate's verdicts next to the active head's, on live posters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ShadowSummary {
    /// Posters the candidate scored.
    pub posters: u64,
    /// Posters where both heads gave exactly the same tags.
    pub same_tags: u64,
    /// Mean Jaccard overlap of the two tag sets (1 = always the same).
    pub agreement: f64,
    /// The posters where the tag sets overlap least, worst first.
    pub disagreements: Vec<ShadowDisagreement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ShadowDisagreement {
    pub poster_id: String,
    pub active_tags: Vec<String>,
    pub candidate_tags: Vec<String>,
    pub overlap: f64,
}

/// A corrected poster: its id, the genres a person gave it, its features.
pub type CorrectedFeatures = (String, Vec<String>, Vec<f32>);

const HEAD_COLUMNS: &str = "id, parent, created_at, state, origin, backbone, feature_dim, labels, \
                            corrections, base_posters, metrics, sha256";

/// Retired heads kept beyond the active, the candidate and the shipped ones:
/// each is ~0.5 MB, and a rollback further back than this is unlikely.
pub const KEEP_RETIRED: usize = 20;

impl Store {
    /// Register a head; an `active` or `candidate` one replaces the one in
    /// that state (which is retired) in the same transaction.
    pub fn insert_head(&self, head: &NewHead) -> Result<i64, StoreError> {
        let labels = serde_json::to_string(&head.labels).unwrap_or_else(|_| "[]".into());
        let metrics = head.metrics.to_string();
        let tx = self
            .conn
            .unchecked_transaction()
            .ctx("starting to store a head")?;
        if head.state != HeadState::Retired {
            tx.execute(
                "UPDATE heads SET state = 'retired' WHERE state = ?1",
                [head.state.as_str()],
            )
            .ctx("retiring the head this one replaces")?;
        }
        let id: i64 = tx
            .query_row(
                "INSERT INTO heads (parent, created_at, state, origin, backbone, feature_dim,
                    labels, corrections, base_posters, metrics, sha256, head)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
                params![
                    head.parent,
                    head.created_at_ms,
                    head.state.as_str(),
                    head.origin,
                    head.backbone,
                    head.feature_dim as i64,
                    labels,
                    i64::try_from(head.corrections).unwrap_or(i64::MAX),
                    i64::try_from(head.base_posters).unwrap_or(i64::MAX),
                    metrics,
                    head.sha256,
                    head.head,
                ],
                |row| row.get(0),
            )
            .ctx("storing a head")?;
        prune_retired(&tx)?;
        tx.commit().ctx("committing a head")?;
        Ok(id)
    }

    /// Make `id` active (the old active one is retired). A candidate that is
    /// promoted stops being the candidate; promoting an older head (a
    /// rollback) leaves the candidate as it was.
    pub fn promote_head(&self, id: i64) -> Result<(), StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .ctx("starting a promotion")?;
        let exists: Option<String> = tx
            .query_row("SELECT state FROM heads WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .ctx("finding the head to promote")?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("head {id}")));
        }
        tx.execute(
            "UPDATE heads SET state = 'retired' WHERE state = 'active' AND id != ?1",
            [id],
        )
        .ctx("retiring the active head")?;
        tx.execute("UPDATE heads SET state = 'active' WHERE id = ?1", [id])
            .ctx("activating the head")?;
        tx.commit().ctx("committing a promotion")?;
        Ok(())
    }

    /// Retire the candidate, if any (it stops being shadowed).
    pub fn retire_candidate(&self) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE heads SET state = 'retired' WHERE state = 'candidate'",
                [],
            )
            .ctx("retiring the candidate head")?;
        Ok(())
    }

    pub fn heads(&self) -> Result<Vec<HeadRow>, StoreError> {
        let sql = format!("SELECT {HEAD_COLUMNS} FROM heads ORDER BY id DESC");
        let raw: Vec<RawHead> = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.query_map([], RawHead::from_row)?.collect())
            .ctx("listing heads")?;
        raw.into_iter().map(RawHead::decode).collect()
    }

    pub fn head_row(&self, id: i64) -> Result<Option<HeadRow>, StoreError> {
        let sql = format!("SELECT {HEAD_COLUMNS} FROM heads WHERE id = ?1");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.query_row([id], RawHead::from_row).optional())
            .ctx("reading a head")?
            .map(RawHead::decode)
            .transpose()
    }

    /// The head's JSON (weights and all).
    pub fn head_json(&self, id: i64) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT head FROM heads WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .ctx("reading a head's weights")
    }

    pub fn head_by_sha256(&self, sha256: &str) -> Result<Option<HeadRow>, StoreError> {
        let sql = format!("SELECT {HEAD_COLUMNS} FROM heads WHERE sha256 = ?1 ORDER BY id LIMIT 1");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.query_row([sha256], RawHead::from_row).optional())
            .ctx("finding a head by checksum")?
            .map(RawHead::decode)
            .transpose()
    }

    /// Corrections (latest per poster) whose poster has features `dim` wide
    /// from one backbone variant (`model`, e.g. `efficientnet-lite0-int8`;
    /// another variant's features are another feature space, and a head must
    /// not mix them): (poster id, corrected genres, features), oldest
    /// correction first.
    pub fn corrections_with_features(
        &self,
        model: &str,
        dim: usize,
    ) -> Result<Vec<CorrectedFeatures>, StoreError> {
        let rows: Vec<(String, String, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT f.poster_id, f.genres, x.data FROM feedback f
                 JOIN features x ON x.poster_id = f.poster_id AND x.dim = ?1 AND x.model = ?2
                 WHERE f.id IN (SELECT max(id) FROM feedback GROUP BY poster_id)
                 ORDER BY f.id",
            )
            .and_then(|mut stmt| {
                stmt.query_map(rusqlite::params![dim as i64, model], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect()
            })
            .ctx("reading corrected posters' features")?;
        rows.into_iter()
            .map(|(id, genres, data)| {
                let genres: Vec<String> =
                    serde_json::from_str(&genres).map_err(|e| StoreError::Corrupt {
                        what: "feedback genres",
                        key: id.clone(),
                        detail: e.to_string(),
                    })?;
                let values = super::features::decode(&data).ok_or_else(|| StoreError::Corrupt {
                    what: "features",
                    key: id.clone(),
                    detail: "odd byte length".into(),
                })?;
                Ok((id, genres, values))
            })
            .collect()
    }

    /// How many posters have a correction (the learning loop's trigger).
    pub fn corrected_posters(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(DISTINCT poster_id) FROM feedback", [], |r| {
                r.get::<_, i64>(0)
            })
            .ctx("counting corrected posters")
            .map(|n| u64::try_from(n).unwrap_or(0))
    }

    /// Genres an operator added, oldest first.
    pub fn extra_genres(&self) -> Result<Vec<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT label FROM extra_genres ORDER BY created_at, label")
            .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
            .ctx("reading the added genres")
    }

    /// Add a genre (no-op when it is there already). Whether it is a valid
    /// name is the caller's check.
    pub fn add_extra_genre(&self, label: &str, at_ms: i64) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "INSERT INTO extra_genres (label, created_at) VALUES (?1, ?2)
                 ON CONFLICT (label) DO NOTHING",
                params![label, at_ms],
            )
            .ctx("adding a genre")
            .map(|n| n == 1)
    }

    /// Corrected posters (latest correction) naming `label`.
    pub fn genre_examples(&self, label: &str) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT count(*) FROM feedback f
                 WHERE f.id IN (SELECT max(id) FROM feedback GROUP BY poster_id)
                   AND EXISTS (SELECT 1 FROM json_each(f.genres) WHERE value = ?1)",
            )
            .and_then(|mut stmt| stmt.query_row([label], |r| r.get::<_, i64>(0)))
            .ctx("counting a genre's examples")
            .map(|n| u64::try_from(n).unwrap_or(0))
    }

    /// The candidate `head_id`'s shadow verdicts against the active head's.
    pub fn shadow_summary(&self, head_id: i64, worst: usize) -> Result<ShadowSummary, StoreError> {
        let rows: Vec<(String, String, String)> = self
            .conn
            .prepare_cached(
                "SELECT poster_id, active_tags, tags FROM shadow WHERE head_id = ?1
                 ORDER BY created_at DESC LIMIT 10000",
            )
            .and_then(|mut stmt| {
                stmt.query_map([head_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .ctx("reading shadow scores")?;
        let mut summary = ShadowSummary::default();
        let mut all = Vec::with_capacity(rows.len());
        let mut overlap_sum = 0.0;
        for (poster_id, active, candidate) in rows {
            let parse = |s: &str| -> Vec<String> { serde_json::from_str(s).unwrap_or_default() };
            let (active_tags, candidate_tags) = (parse(&active), parse(&candidate));
            let overlap = jaccard(&active_tags, &candidate_tags);
            summary.posters += 1;
            if overlap >= 1.0 {
                summary.same_tags += 1;
            }
            overlap_sum += overlap;
            all.push(ShadowDisagreement {
                poster_id,
                active_tags,
                candidate_tags,
                overlap,
            });
        }
        if summary.posters > 0 {
            summary.agreement = overlap_sum / summary.posters as f64;
        }
        all.retain(|d| d.overlap < 1.0);
        all.sort_by(|a, b| a.overlap.total_cmp(&b.overlap));
        all.truncate(worst);
        summary.disagreements = all;
        Ok(summary)
    }
}

/// |a ∩ b| / |a ∪ b|; two empty sets agree.
fn jaccard(a: &[String], b: &[String]) -> f64 {
    let union = a.iter().chain(b.iter().filter(|x| !a.contains(x))).count();
    if union == 0 {
        return 1.0;
    }
    let inter = a.iter().filter(|x| b.contains(x)).count();
    inter as f64 / union as f64
}

fn prune_retired(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM heads WHERE state = 'retired' AND origin != 'shipped' AND id NOT IN
           (SELECT id FROM heads WHERE state = 'retired' ORDER BY id DESC LIMIT ?1)
         AND id NOT IN (SELECT parent FROM heads WHERE state != 'retired' AND parent IS NOT NULL)",
        [KEEP_RETIRED as i64],
    )
    .ctx("forgetting the oldest retired heads")?;
    Ok(())
}

struct RawHead {
    id: i64,
    parent: Option<i64>,
    created_at: i64,
    state: String,
    origin: String,
    backbone: String,
    feature_dim: i64,
    labels: String,
    corrections: i64,
    base_posters: i64,
    metrics: String,
    sha256: String,
}

impl RawHead {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            parent: r.get(1)?,
            created_at: r.get(2)?,
            state: r.get(3)?,
            origin: r.get(4)?,
            backbone: r.get(5)?,
            feature_dim: r.get(6)?,
            labels: r.get(7)?,
            corrections: r.get(8)?,
            base_posters: r.get(9)?,
            metrics: r.get(10)?,
            sha256: r.get(11)?,
        })
    }

    fn decode(self) -> Result<HeadRow, StoreError> {
        let key = format!("head {}", self.id);
        Ok(HeadRow {
            id: self.id,
            parent: self.parent,
            created_at_ms: self.created_at,
            state: HeadState::parse(&self.state)?,
            origin: self.origin,
            backbone: self.backbone,
            feature_dim: usize::try_from(self.feature_dim).unwrap_or(0),
            labels: serde_json::from_str(&self.labels).map_err(|e| StoreError::Corrupt {
                what: "head labels",
                key: key.clone(),
                detail: e.to_string(),
            })?,
            corrections: u64::try_from(self.corrections).unwrap_or(0),
            base_posters: u64::try_from(self.base_posters).unwrap_or(0),
            metrics: serde_json::from_str(&self.metrics).unwrap_or(serde_json::Value::Null),
            sha256: self.sha256,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(state: HeadState, sha: char) -> NewHead {
        NewHead {
            parent: None,
            state,
            origin: "retrain",
            backbone: "b".repeat(64),
            feature_dim: 4,
            labels: vec!["Drama".into()],
            corrections: 3,
            base_posters: 10,
            metrics: serde_json::json!({"micro_f1": 0.5}),
            sha256: sha.to_string().repeat(64),
            head: "{}".into(),
            created_at_ms: 1,
        }
    }

    #[test]
    fn one_active_one_candidate_and_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("h.db")).unwrap();
        let a = store.insert_head(&head(HeadState::Active, 'a')).unwrap();
        let c1 = store.insert_head(&head(HeadState::Candidate, 'b')).unwrap();
        let c2 = store.insert_head(&head(HeadState::Candidate, 'c')).unwrap();
        let state = |id| store.head_row(id).unwrap().unwrap().state;
        assert_eq!(
            state(c1),
            HeadState::Retired,
            "a new candidate replaces the old"
        );
        assert_eq!(state(c2), HeadState::Candidate);
        store.promote_head(c2).unwrap();
        assert_eq!(state(c2), HeadState::Active);
        assert_eq!(state(a), HeadState::Retired);
        store.promote_head(a).unwrap(); // rollback
        assert_eq!(state(a), HeadState::Active);
        assert_eq!(state(c2), HeadState::Retired);
        assert!(matches!(
            store.promote_head(999),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(store.heads().unwrap().len(), 3);
        assert_eq!(
            store.head_by_sha256(&"c".repeat(64)).unwrap().unwrap().id,
            c2
        );
    }

    #[test]
    fn jaccard_of_tag_sets() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(jaccard(&s(&[]), &s(&[])), 1.0);
        assert_eq!(jaccard(&s(&["A"]), &s(&["A", "B"])), 0.5);
        assert_eq!(jaccard(&s(&["A"]), &s(&["B"])), 0.0);
    }
}
