//! Versioned schema migrations (rusqlite_migration keeps the version in
//! SQLite's `user_version`). Append new migrations; never edit a shipped one,
//! since boards in the field have already run it.

use rusqlite_migration::{Migrations, M};

/// Version 1: posters, classifications, feedback and the outbox.
///
/// - Times are Unix milliseconds (UTC).
/// - JSON columns hold arrays: `genres`/`top3` of `{"label","score"}`,
///   `tags`/feedback `genres` of strings.
/// - The outbox has no foreign key: its rows carry the whole message, so
///   retention can delete history without touching what is unpublished.
/// - `AUTOINCREMENT` so an outbox `seq` is never reused, even after the
///   newest rows are deleted: replay order is `seq` order, forever.
const V1: &str = r#"
CREATE TABLE posters (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 64),
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    source      TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    thumbnail   BLOB
) STRICT;

CREATE TABLE classifications (
    id          INTEGER PRIMARY KEY,
    poster_id   TEXT NOT NULL REFERENCES posters(id) ON DELETE CASCADE,
    source      TEXT NOT NULL,
    model       TEXT NOT NULL,
    scores      TEXT NOT NULL,
    tags        TEXT NOT NULL,
    top3        TEXT NOT NULL,
    latency_ms  REAL NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX classifications_poster ON classifications (poster_id, id);
CREATE INDEX classifications_created ON classifications (created_at);

CREATE TABLE feedback (
    id          INTEGER PRIMARY KEY,
    poster_id   TEXT NOT NULL REFERENCES posters(id) ON DELETE CASCADE,
    genres      TEXT NOT NULL,
    author      TEXT,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX feedback_poster ON feedback (poster_id);

CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    topic        TEXT NOT NULL,
    payload      BLOB NOT NULL,
    qos          INTEGER NOT NULL CHECK (qos IN (0, 1, 2)),
    retain       INTEGER NOT NULL CHECK (retain IN (0, 1)),
    created_at   INTEGER NOT NULL,
    published_at INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;
"#;

/// Version 2: the watched folder's files, so a restart never classifies
/// the same file again.
///
/// - The key is the file as the watcher saw it: path (raw OS bytes, so no
///   two names collide), size and mtime. A file replaced by new content gets
///   a new key and is classified again; the same bytes under a new name are
///   classified again too (a new sighting of the same poster id).
/// - `done` rows are written in the same transaction as the poster's record;
///   `failed` rows (not an image, unreadable) stop the watcher retrying a
///   file that can never succeed, and keep the reason for the operator.
/// - No foreign key to `posters`: retention may forget a poster's history,
///   but the file must still count as seen, or it would be classified again.
const V2: &str = r#"
CREATE TABLE watched_files (
    path        BLOB NOT NULL,
    size_bytes  INTEGER NOT NULL,
    mtime_ms    INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    poster_id   TEXT,
    error       TEXT,
    decided_at  INTEGER NOT NULL,
    PRIMARY KEY (path, size_bytes, mtime_ms)
) STRICT;
"#;

/// Version 3: each poster's backbone features, for the dashboard's poster map
/// (2-D projection, clusters, outliers) and for retraining from corrections.
///
/// - One row per poster, from its latest sighting with the model named in
///   `model`; a poster seen again by another model gets the new features.
/// - `data` is `dim` little-endian IEEE half floats: half the size of f32,
///   and far more precision than a map or a logistic head needs (10,000
///   posters of the shipped 1712-wide features take ~34 MB).
/// - Cascade: retention that forgets a poster forgets its features.
/// - Indexes for the dashboard's filters: history by source and by poster
///   confidence, feedback newest-first.
const V3: &str = r#"
CREATE TABLE features (
    poster_id   TEXT PRIMARY KEY NOT NULL REFERENCES posters(id) ON DELETE CASCADE,
    model       TEXT NOT NULL,
    dim         INTEGER NOT NULL CHECK (dim > 0),
    data        BLOB NOT NULL CHECK (length(data) = 2 * dim)
) STRICT;
CREATE INDEX classifications_source ON classifications (source, created_at);
"#;

/// Version 4: where each correction came from and whether it confirmed
/// the tags as they were ("kept as tagged"), for the learning loop's
/// counts and the accuracy page.
///
/// - `via`: `dashboard`, `api`, `mqtt` or `import`; older rows were all
///   made on the dashboard or the API, and are counted as `dashboard`.
/// - `kept = 1`: `genres` holds the tags the poster had when it was
///   confirmed, so a confirmation counts like any correction.
const V4: &str = r#"
ALTER TABLE feedback ADD COLUMN via TEXT NOT NULL DEFAULT 'dashboard'
    CHECK (via IN ('dashboard', 'api', 'mqtt', 'import'));
ALTER TABLE feedback ADD COLUMN kept INTEGER NOT NULL DEFAULT 0 CHECK (kept IN (0, 1));
"#;

/// Version 5: the learning loop's genre heads and the candidate's shadow
/// scores.
///
/// - `heads.head` is the whole head as JSON (weights, standardisation,
///   thresholds; ~0.5 MB for the shipped 19 x 1712), `sha256` its checksum.
///   `origin`: `shipped` (registered from `models/` at start, by checksum),
///   `retrain` (learned here) or `import` (learned on another device).
/// - At most one `active` and one `candidate` (partial unique indexes): a
///   promotion is one transaction that retires the old active head.
/// - `metrics`: the head's figures on held-out corrections when it was made,
///   beside its parent's on the same posters (JSON object).
/// - `extra_genres`: genres an operator added (dashboard or config) that
///   corrections may name; a retrain learns one once it has enough examples.
/// - `shadow`: what a candidate said about each poster classified while it
///   was candidate (never published), for the Model page's comparison.
///   Cascades with the poster (retention) and with the head.
const V5: &str = r#"
CREATE TABLE heads (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    parent       INTEGER REFERENCES heads(id) ON DELETE SET NULL,
    created_at   INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('active', 'candidate', 'retired')),
    origin       TEXT NOT NULL CHECK (origin IN ('shipped', 'retrain', 'import')),
    backbone     TEXT NOT NULL,
    feature_dim  INTEGER NOT NULL CHECK (feature_dim > 0),
    labels       TEXT NOT NULL,
    corrections  INTEGER NOT NULL DEFAULT 0,
    base_posters INTEGER NOT NULL DEFAULT 0,
    metrics      TEXT NOT NULL DEFAULT '{}',
    sha256       TEXT NOT NULL CHECK (length(sha256) = 64),
    head         TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX heads_one_active ON heads (state) WHERE state = 'active';
CREATE UNIQUE INDEX heads_one_candidate ON heads (state) WHERE state = 'candidate';

CREATE TABLE shadow (
    poster_id   TEXT NOT NULL REFERENCES posters(id) ON DELETE CASCADE,
    head_id     INTEGER NOT NULL REFERENCES heads(id) ON DELETE CASCADE,
    active_id   INTEGER,
    scores      TEXT NOT NULL,
    tags        TEXT NOT NULL,
    active_tags TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (head_id, poster_id)
) STRICT;

CREATE TABLE extra_genres (
    label       TEXT PRIMARY KEY NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
"#;

const STEPS: &[M<'static>] = &[M::up(V1), M::up(V2), M::up(V3), M::up(V4), M::up(V5)];

/// Every migration, oldest first.
pub(crate) const MIGRATIONS: Migrations<'static> = Migrations::from_slice(STEPS);

/// The schema version this build creates.
pub(crate) const LATEST: usize = STEPS.len();

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_well_formed() {
        super::MIGRATIONS.validate().unwrap();
    }
}
