//! The project's SQLite schema and its forward migrations.
//!
//! The version lives in `PRAGMA user_version`; migration `k` (1-based) takes a database from
//! version `k - 1` to `k`. A database newer than this program is refused rather than touched.

/// Each entry is one migration, applied in its own transaction.
pub const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE project_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE candidates (
        id           INTEGER PRIMARY KEY,
        name         TEXT NOT NULL UNIQUE,
        -- JSON ObjectSource: where the pixels are; NULL when they are stored in `pixels`.
        source       TEXT,
        width        INTEGER NOT NULL,
        height       INTEGER NOT NULL,
        ra_deg       REAL,
        dec_deg      REAL,
        tile         TEXT,
        metadata     TEXT NOT NULL DEFAULT '{}',
        -- robust sky sigma per band (u, g, r, i), JSON array: sets the survey-wide display scale
        sky_sigma    TEXT NOT NULL DEFAULT '[]',
        truth_is_lens INTEGER CHECK (truth_is_lens IN (0, 1)),
        truth        TEXT,
        is_training  INTEGER NOT NULL DEFAULT 0 CHECK (is_training IN (0, 1)),
        added_at     TEXT NOT NULL
    );
    CREATE TABLE pixels (
        candidate_id INTEGER PRIMARY KEY REFERENCES candidates(id),
        -- little-endian f32, 4 bands in u, g, r, i order, masked pixels as NaN
        data         BLOB NOT NULL
    );
    CREATE TABLE inspectors (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        role       TEXT NOT NULL CHECK (role IN ('volunteer', 'researcher')),
        created_at TEXT NOT NULL
    );
    CREATE TABLE sessions (
        id           TEXT PRIMARY KEY,
        inspector_id INTEGER NOT NULL REFERENCES inspectors(id),
        started_at   TEXT NOT NULL,
        origin       TEXT NOT NULL DEFAULT 'local'
    );
    -- Append-only: an inspector's current grade of a candidate is their latest event;
    -- a retraction (undo) is an event with a NULL score.
    CREATE TABLE grade_events (
        id           INTEGER PRIMARY KEY,
        uid          TEXT NOT NULL UNIQUE,
        candidate_id INTEGER NOT NULL REFERENCES candidates(id),
        inspector_id INTEGER NOT NULL REFERENCES inspectors(id),
        score        INTEGER CHECK (score IN (0, 1, 3, 5)),
        time         TEXT NOT NULL,
        session_id   TEXT REFERENCES sessions(id),
        comment      TEXT,
        points       TEXT
    );
    CREATE INDEX grade_events_by_candidate ON grade_events(candidate_id, inspector_id, id);
    CREATE INDEX grade_events_by_inspector ON grade_events(inspector_id, id);
    CREATE TRIGGER grade_events_append_only_update BEFORE UPDATE ON grade_events
        BEGIN SELECT RAISE(ABORT, 'grade events are append-only'); END;
    CREATE TRIGGER grade_events_append_only_delete BEFORE DELETE ON grade_events
        BEGIN SELECT RAISE(ABORT, 'grade events are append-only'); END;
    CREATE TABLE model_versions (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        created_at TEXT NOT NULL,
        parent_id  INTEGER REFERENCES model_versions(id),
        card       TEXT NOT NULL DEFAULT '{}',
        metrics    TEXT NOT NULL DEFAULT '{}',
        weights    BLOB,
        is_current INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE predictions (
        model_version_id INTEGER NOT NULL REFERENCES model_versions(id),
        candidate_id     INTEGER NOT NULL REFERENCES candidates(id),
        score            REAL NOT NULL,
        PRIMARY KEY (model_version_id, candidate_id)
    ) WITHOUT ROWID;
    CREATE INDEX predictions_by_candidate ON predictions(candidate_id);
    "#,
];

/// The schema version this program writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;
