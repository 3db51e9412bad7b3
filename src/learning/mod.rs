//! The learning loop: corrections teach the device a new genre head, which
//! is judged in the shadow of the active one and promoted (or rolled back)
//! by a person.
//!
//! - Heads live in the store (`heads` table): the shipped one is registered
//!   at start by its checksum, retrained and imported ones beside it. The
//!   active head survives a restart; the live heads are swapped in
//!   [`HeadSlot`] so a promotion needs no restart.
//! - A retrain runs on its own thread in the idle CPU class: the classify
//!   workers always win the cores. It can be cancelled between genres.
//! - The retained `<prefix>/<device_id>/model` state says which head tags
//!   and which one is being judged.

pub mod base;
pub mod genres;
pub mod headfile;
pub mod job;
pub mod retrain;

use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::{info, warn};
use utoipa::ToSchema;

use crate::model::head::GenreHead;
use crate::model::live::{GenreList, HeadSlot, LiveHead};
use crate::model::manifest::{read_verified, sha256_hex, Manifest};
use crate::model::Classifier;
use crate::offline::dataset::Split;
use crate::publish::PublishHandle;
use crate::store::{HeadRow, HeadState, NewHead, StoreError, StoreHandle};
use headfile::{Expect, HeadFile, HeadFileError};
pub use job::{JobState, JobStatus};
use retrain::{compare, part_of, Comparison};

#[derive(Debug, thiserror::Error)]
pub enum LearningError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("head {0} does not exist")]
    UnknownHead(i64),
    #[error("a retrain is already running: wait for it or cancel it")]
    Busy,
    #[error(
        "head {id} scores worse than the active head on {held_out} held-out corrections \
         (micro-F1 {candidate:.3} vs {active:.3}): send {{\"force\": true}} to promote it anyway"
    )]
    Worse {
        id: i64,
        held_out: usize,
        candidate: f64,
        active: f64,
    },
    #[error("head {id} cannot run here: {why}")]
    Incompatible { id: i64, why: String },
    #[error(transparent)]
    HeadFile(#[from] HeadFileError),
    #[error("stored head {0} is unreadable: {1}")]
    Corrupt(i64, String),
    #[error("the retrain failed: {0}")]
    RetrainFailed(String),
    #[error("{0}")]
    BadGenre(String),
}

/// What the device runs, that every head must match.
#[derive(Debug, Clone)]
pub struct Backbone {
    /// `efficientnet-lite0-int8`: the name its features are stored under.
    pub name: String,
    /// `int8`.
    pub variant: String,
    /// sha256 of the backbone file in use.
    pub sha256: String,
    pub feature_dim: usize,
    pub feature_layout: serde_json::Value,
    pub labels: Vec<String>,
}

/// The retained `model` state and the dashboard's summary of one head.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HeadSummary {
    pub id: i64,
    pub name: String,
    pub origin: String,
    pub corrections: u64,
    pub micro_f1: Option<f64>,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelState {
    pub active: Option<HeadSummary>,
    pub candidate: Option<HeadSummary>,
}

struct Inner {
    /// The name heads are published under, before `+head-N`.
    published: String,
    heads: HeadSlot,
    genres: GenreList,
    store: StoreHandle,
    backbone: Backbone,
    /// `models/` base features file, if shipped.
    base: Option<BaseRef>,
    publish: Option<(PublishHandle, String)>,
    device_id: String,
    job: job::Job,
    threads: usize,
}

/// The cheap handle the dashboard, the API and the CLI share.
#[derive(Clone)]
pub struct Learning(Arc<Inner>);

impl Learning {
    /// Register the shipped head, restore the active head and the candidate
    /// from the store, and put them live.
    pub async fn start(
        classifier: &Classifier,
        store: StoreHandle,
        model_dir: &std::path::Path,
        manifest: &Manifest,
        options: Options,
    ) -> Result<Self, LearningError> {
        let heads = classifier.heads().clone();
        let backbone = backbone_of(manifest, classifier.variant())?;
        let base = manifest
            .base_features_for(&backbone.variant)
            .map(|(f, of)| BaseRef {
                path: model_dir.join(&f.file),
                sha256: f.sha256.clone(),
                variant: of,
            });
        let extra = options.extra_genres.clone();
        let learning = Self(Arc::new(Inner {
            // Heads are published under the classifier's name for what runs
            // (`...-int8-full@onnxruntime`); features and head files use the
            // variant's (`backbone.name`), whichever runtime ran it.
            published: classifier.base_name().to_string(),
            heads,
            genres: options.genres,
            store,
            backbone,
            base,
            publish: options.publish,
            device_id: options.device_id,
            job: job::Job::default(),
            threads: options.threads,
        }));
        learning
            .0
            .store
            .call(move |s| add_genres(s, &extra))
            .await?;
        learning.restore().await?;
        learning.refresh_genres().await?;
        Ok(learning)
    }

    async fn restore(&self) -> Result<(), LearningError> {
        let shipped = self.0.heads.active();
        let shipped_json = serde_json::to_string(&shipped.head)
            .map_err(|e| LearningError::Corrupt(0, e.to_string()))?;
        let shipped_sha = sha256_hex(shipped_json.as_bytes());
        let b = self.0.backbone.clone();
        let labels = b.labels.clone();
        let metrics = shipped
            .head
            .metrics
            .get("model")
            .cloned()
            .unwrap_or_default();
        let (active, candidate) = self
            .0
            .store
            .call(move |s| {
                let shipped_id = match s.head_by_sha256(&shipped_sha)? {
                    Some(row) => row.id,
                    None => {
                        let has_active = s.heads()?.iter().any(|h| h.state == HeadState::Active);
                        s.insert_head(&NewHead {
                            parent: None,
                            state: if has_active {
                                HeadState::Retired
                            } else {
                                HeadState::Active
                            },
                            origin: "shipped",
                            backbone: b.sha256.clone(),
                            feature_dim: b.feature_dim,
                            labels: labels.clone(),
                            corrections: 0,
                            base_posters: 0,
                            metrics: serde_json::json!({ "model": metrics }),
                            sha256: shipped_sha.clone(),
                            head: shipped_json,
                            created_at_ms: crate::poster::now_ms(),
                        })?
                    }
                };
                let rows = s.heads()?;
                let pick = |state| rows.iter().find(|h| h.state == state).cloned();
                let mut active = pick(HeadState::Active);
                if active.as_ref().is_none_or(|h| !fits(h, &b)) {
                    if let Some(h) = &active {
                        warn!(
                            head = h.id,
                            "the active head does not fit this backbone; the shipped head is active again"
                        );
                    }
                    s.promote_head(shipped_id)?;
                    active = s.head_row(shipped_id)?;
                }
                let candidate = pick(HeadState::Candidate).filter(|h| fits(h, &b));
                let load = |row: Option<HeadRow>| -> Result<Option<(HeadRow, String)>, StoreError> {
                    match row {
                        Some(r) => Ok(s.head_json(r.id)?.map(|j| (r, j))),
                        None => Ok(None),
                    }
                };
                Ok((load(active)?, load(candidate)?))
            })
            .await?;
        let active = match active {
            Some((row, json)) if row.origin != "shipped" => Arc::new(self.live(&row, &json)?),
            Some((row, _)) => Arc::new(LiveHead::new(
                &self.0.published,
                Some(row.id),
                true,
                shipped.head.clone(),
            )),
            None => shipped,
        };
        let candidate = match candidate {
            Some((row, json)) => Some(Arc::new(self.live(&row, &json)?)),
            None => None,
        };
        info!(head = %active.name, candidate = ?candidate.as_ref().map(|c| &c.name), "genre heads");
        self.0.heads.set(active, candidate);
        self.announce().await;
        Ok(())
    }

    fn live(&self, row: &HeadRow, json: &str) -> Result<LiveHead, LearningError> {
        let head = GenreHead::from_json(json.as_bytes(), &format!("head {}", row.id))
            .map_err(|e| LearningError::Corrupt(row.id, e.to_string()))?;
        Ok(LiveHead::new(
            &self.0.published,
            Some(row.id),
            row.origin == "shipped",
            head,
        ))
    }

    /// Every stored head, newest first.
    pub async fn list(&self) -> Result<Vec<HeadRow>, LearningError> {
        Ok(self.0.store.call(|s| s.heads()).await?)
    }

    pub async fn state(&self) -> Result<ModelState, LearningError> {
        let rows = self.list().await?;
        let set = self.0.heads.get();
        let summary = |live: &LiveHead| {
            let row = rows.iter().find(|r| Some(r.id) == live.id)?;
            Some(HeadSummary {
                id: row.id,
                name: live.name.clone(),
                origin: row.origin.clone(),
                corrections: row.corrections,
                micro_f1: row
                    .metrics
                    .get("model")
                    .and_then(|m| m.get("micro_f1"))
                    .and_then(serde_json::Value::as_f64),
                created_at_ms: row.created_at_ms,
            })
        };
        Ok(ModelState {
            active: summary(&set.active),
            candidate: set.candidate.as_deref().and_then(summary),
        })
    }

    /// Publish the retained `model` state (after any change of heads).
    async fn announce(&self) {
        let Some((publish, topic)) = &self.0.publish else {
            return;
        };
        match self.state().await {
            Ok(state) => match serde_json::to_vec(&state) {
                Ok(payload) => publish.set_retained(topic.clone(), payload),
                Err(err) => warn!(error = %err, "cannot encode the model state"),
            },
            Err(err) => warn!(error = %err, "cannot read the model state"),
        }
    }

    /// Make head `id` active now. A candidate that scores worse than the
    /// active head on held-out corrections needs `force`; an older head
    /// (a rollback) never does.
    pub async fn promote(&self, id: i64, force: bool) -> Result<HeadRow, LearningError> {
        let row = self
            .0
            .store
            .call(move |s| s.head_row(id))
            .await?
            .ok_or(LearningError::UnknownHead(id))?;
        if !fits(&row, &self.0.backbone) {
            return Err(LearningError::Incompatible {
                id,
                why: "it was trained on another backbone or genres".into(),
            });
        }
        let set = self.0.heads.get();
        if set.active.id == Some(id) {
            return Ok(row);
        }
        let json = self
            .0
            .store
            .call(move |s| s.head_json(id))
            .await?
            .ok_or(LearningError::UnknownHead(id))?;
        let live = Arc::new(self.live(&row, &json)?);
        if row.state == HeadState::Candidate && !force {
            let c = self.compare_now(&live.head, &set.active.head).await?;
            if c.candidate_worse() {
                let f1 =
                    |h: &Option<retrain::HeldOut>| h.as_ref().map_or(0.0, |h| h.summary.micro_f1);
                return Err(LearningError::Worse {
                    id,
                    held_out: c.held_out,
                    candidate: f1(&c.candidate),
                    active: f1(&c.parent),
                });
            }
        }
        self.0.store.call(move |s| s.promote_head(id)).await?;
        let candidate = set.candidate.filter(|c| c.id != Some(id));
        info!(head = %live.name, forced = force, "genre head promoted");
        self.0.heads.set(Arc::clone(&live), candidate);
        self.refresh_genres().await?;
        self.announce().await;
        self.0
            .store
            .call(move |s| s.head_row(id))
            .await?
            .ok_or(LearningError::UnknownHead(id))
    }

    /// Stop shadowing the candidate (it is kept, retired).
    pub async fn discard_candidate(&self) -> Result<(), LearningError> {
        self.0.store.call(|s| s.retire_candidate()).await?;
        let set = self.0.heads.get();
        self.0.heads.set(set.active, None);
        self.announce().await;
        Ok(())
    }

    /// Both heads on today's held-out corrections.
    pub async fn compare_now(
        &self,
        candidate: &GenreHead,
        active: &GenreHead,
    ) -> Result<Comparison, LearningError> {
        let dim = self.0.backbone.feature_dim;
        let model = self.0.backbone.name.clone();
        let held: Vec<(Vec<f32>, Vec<String>)> = self
            .0
            .store
            .call(move |s| s.corrections_with_features(&model, dim))
            .await?
            .into_iter()
            .filter(|(id, _, _)| part_of(id) == Split::Validation)
            .map(|(_, genres, f)| (f, genres))
            .collect();
        let (features, genres): (Vec<_>, Vec<_>) = held.into_iter().unzip();
        Ok(compare(candidate, active, &features, &genres))
    }

    /// The active head beside the candidate on held-out corrections and on
    /// live posters, for the Model page.
    pub async fn comparison(&self) -> Result<Option<HeadComparison>, LearningError> {
        let set = self.0.heads.get();
        let Some(candidate) = set.candidate else {
            return Ok(None);
        };
        let Some(candidate_id) = candidate.id else {
            return Ok(None);
        };
        let held_out = self.compare_now(&candidate.head, &set.active.head).await?;
        let shadow = self
            .0
            .store
            .call(move |s| s.shadow_summary(candidate_id, 12))
            .await?;
        Ok(Some(HeadComparison {
            active: set.active.name.clone(),
            candidate: candidate.name.clone(),
            candidate_id,
            candidate_worse: held_out.candidate_worse(),
            too_few: held_out.held_out < FEW_HELD_OUT,
            held_out,
            shadow,
        }))
    }

    /// Export head `id` as a head file.
    pub async fn export(&self, id: i64) -> Result<HeadFile, LearningError> {
        let found = self
            .0
            .store
            .call(move |s| Ok(s.head_row(id)?.zip(s.head_json(id)?)))
            .await?;
        let (row, json) = found.ok_or(LearningError::UnknownHead(id))?;
        Ok(HeadFile {
            format: headfile::HEAD_FILE_FORMAT.into(),
            backbone: self.0.backbone.name.clone(),
            backbone_sha256: row.backbone.clone(),
            feature_dim: row.feature_dim,
            feature_layout: self.0.backbone.feature_layout.clone(),
            labels: row.labels.clone(),
            sha256: sha256_hex(json.as_bytes()),
            head: json,
            origin: row.origin.clone(),
            corrections: row.corrections,
            base_posters: row.base_posters,
            metrics: row.metrics.clone(),
            exported_from: format!("{}/head-{id}", self.0.device_id),
            created_at_ms: row.created_at_ms,
        })
    }

    /// Check a head file and store it as the candidate (shadowed until a
    /// person promotes it). Nothing changes when it does not fit.
    pub async fn import(&self, bytes: &[u8]) -> Result<HeadRow, LearningError> {
        let b = &self.0.backbone;
        let (file, head) = HeadFile::check(
            bytes,
            &Expect {
                backbone_sha256: &b.sha256,
                feature_dim: b.feature_dim,
                labels: &b.labels,
            },
        )?;
        let parent = self.0.heads.active().id;
        // Genres it learned that this device does not know yet become
        // added genres here, so corrections can name them.
        let added: Vec<String> = head.labels()[b.labels.len()..].to_vec();
        for g in &added {
            genres::check_name(g).map_err(LearningError::BadGenre)?;
        }
        self.0.store.call(move |s| add_genres(s, &added)).await?;
        self.refresh_genres().await?;
        let metrics = serde_json::json!({
            "imported_from": file.exported_from,
            "at_origin": file.metrics,
        });
        self.add_candidate(NewHead {
            parent,
            state: HeadState::Candidate,
            origin: "import",
            backbone: b.sha256.clone(),
            feature_dim: head.feature_dim,
            labels: head.labels(),
            corrections: file.corrections,
            base_posters: file.base_posters,
            metrics,
            sha256: file.sha256.clone(),
            head: file.head,
            created_at_ms: crate::poster::now_ms(),
        })
        .await
    }

    async fn add_candidate(&self, new: NewHead) -> Result<HeadRow, LearningError> {
        let json = new.head.clone();
        let id = self.0.store.call(move |s| s.insert_head(&new)).await?;
        let row = self
            .0
            .store
            .call(move |s| s.head_row(id))
            .await?
            .ok_or(LearningError::UnknownHead(id))?;
        let live = Arc::new(self.live(&row, &json)?);
        let set = self.0.heads.get();
        info!(head = id, origin = %row.origin, "new candidate head: shadowed until promoted");
        self.0.heads.set(set.active, Some(live));
        self.announce().await;
        Ok(row)
    }
}

/// Register added genres (the config's, an imported head's) in one job.
fn add_genres(store: &crate::store::Store, genres: &[String]) -> Result<(), StoreError> {
    let now = crate::poster::now_ms();
    for g in genres {
        store.add_extra_genre(g, now)?;
    }
    Ok(())
}

/// Fewer held-out corrections than this: the comparison is shown with a
/// warning (one poster moves micro-F1 by several points).
pub const FEW_HELD_OUT: usize = 30;

/// The Model page's compare view.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HeadComparison {
    pub active: String,
    pub candidate: String,
    pub candidate_id: i64,
    pub candidate_worse: bool,
    /// Fewer than [`FEW_HELD_OUT`] held-out corrections.
    pub too_few: bool,
    #[schema(value_type = Object)]
    pub held_out: Comparison,
    pub shadow: crate::store::ShadowSummary,
}

/// Start-up settings.
pub struct Options {
    /// The genres corrections may name, shared with the inputs.
    pub genres: GenreList,
    /// `[learning] extra_genres`.
    pub extra_genres: Vec<String>,
    /// The publisher and the `model` topic, when MQTT is in use.
    pub publish: Option<(PublishHandle, String)>,
    pub device_id: String,
    /// Threads a retrain fits on (0: every core).
    pub threads: usize,
}

/// A head runs here when it was trained on this backbone's features and
/// knows the shipped genres first (genres added on a device follow them).
fn fits(row: &HeadRow, b: &Backbone) -> bool {
    (row.origin == "shipped" || row.backbone.eq_ignore_ascii_case(&b.sha256))
        && row.feature_dim == b.feature_dim
        && row.labels.starts_with(&b.labels)
}

fn backbone_of(manifest: &Manifest, variant: &str) -> Result<Backbone, LearningError> {
    let (name, v) = manifest
        .variant(Some(variant))
        .map_err(|e| LearningError::Incompatible {
            id: 0,
            why: e.to_string(),
        })?;
    Ok(Backbone {
        name: format!("{}-{name}", manifest.backbone.name),
        variant: name.to_string(),
        sha256: v.sha256.clone(),
        feature_dim: manifest.backbone.feature_dim,
        feature_layout: manifest
            .backbone
            .extra
            .get("feature_layout")
            .cloned()
            .unwrap_or_default(),
        labels: manifest.labels.clone(),
    })
}

/// The shipped base features: file, checksum, and the variant whose
/// features they are.
#[derive(Debug, Clone)]
pub(crate) struct BaseRef {
    path: PathBuf,
    sha256: String,
    variant: String,
}

/// Read and check the shipped base features, when the manifest names them.
/// They are one variant's features: a retrain on another variant's (another
/// runtime's best file) would mix two feature spaces, so it is refused.
fn load_base(
    base: &Option<BaseRef>,
    backbone: &Backbone,
    dim: usize,
) -> Result<Option<base::BaseSet>, String> {
    let Some(base) = base else {
        return Ok(None);
    };
    if backbone.variant != base.variant {
        return Err(format!(
            "they are features of the {} variant and this device runs {}; retraining needs the \
             base features of the variant in use: run the {} variant ([inference] variant), or \
             rebuild them with `marquee train --variant <this variant> --backend <runtime> \
             --base-features FILE`",
            base.variant, backbone.name, base.variant
        ));
    }
    let bytes = read_verified(&base.path, &base.sha256).map_err(|e| e.to_string())?;
    let (_, set) = base::decode(&bytes, dim).map_err(|e| e.to_string())?;
    Ok(Some(set))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::default_model_dir;

    fn row(origin: &str, backbone: &str, b: &Backbone) -> HeadRow {
        HeadRow {
            id: 7,
            parent: Some(1),
            created_at_ms: 0,
            state: HeadState::Retired,
            origin: origin.into(),
            backbone: backbone.into(),
            feature_dim: b.feature_dim,
            labels: b.labels.clone(),
            corrections: 0,
            base_posters: 0,
            metrics: serde_json::Value::Null,
            sha256: String::new(),
        }
    }

    /// A head learned on one variant's features is refused on another's
    /// (another runtime's best file), and the base features with it; the
    /// shipped head runs on every variant.
    #[test]
    fn heads_and_base_features_are_keyed_to_the_variant() {
        let dir = default_model_dir();
        let manifest = Manifest::load(&dir).unwrap();
        let int8 = backbone_of(&manifest, "int8").unwrap();
        let full = backbone_of(&manifest, "int8-full").unwrap();
        assert_eq!(full.name, "efficientnet-lite0-int8-full");
        let learned = row("retrain", &int8.sha256, &int8);
        assert!(fits(&learned, &int8));
        assert!(!fits(&learned, &full));
        assert!(fits(&row("shipped", "", &int8), &full));

        let f = manifest.base_features.as_ref().unwrap();
        let base = Some(BaseRef {
            path: dir.join(&f.file),
            sha256: f.sha256.clone(),
            variant: "int8".into(),
        });
        let err = load_base(&base, &full, full.feature_dim).unwrap_err();
        assert!(err.contains("features of the int8 variant"), "{err}");
        assert!(load_base(&base, &int8, int8.feature_dim).unwrap().is_some());

        // Each shipped variant has base features of its own kind.
        for (variant, b) in [("int8", &int8), ("int8-full", &full)] {
            let (f, of) = manifest.base_features_for(variant).unwrap();
            assert_eq!(of, variant);
            let own = Some(BaseRef {
                path: dir.join(&f.file),
                sha256: f.sha256.clone(),
                variant: of,
            });
            assert!(load_base(&own, b, b.feature_dim).unwrap().is_some());
        }
    }
}
