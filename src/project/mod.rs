//! The project: one SQLite file holding candidates, inspectors, append-only grade events, model
//! versions and their predictions (SPEC 7).
//!
//! Entry points: [`Project::create_or_open`] / [`Project::open_existing`], then
//! [`Project::record_grade`] (durable when it returns: WAL with `synchronous=FULL`),
//! [`Project::load_cutout`] (pixels read lazily from the files or the stored blob), and
//! [`ingest::ingest`] for bringing survey data in.

pub mod export;
pub mod export_sky;
pub mod grades;
pub mod import;
pub mod ingest;
pub mod pack;
pub mod relocate;
pub mod schema;
pub mod signing;
pub mod zooniverse;

use crate::cutout::{Band, Cutout};
use crate::render::FluxScale;
use crate::survey::{ObjectSource, ObjectSpec, SkipReason};
pub use grades::{GradeEvent, Inspector, MarkedPoint, NewGrade, Role, Score};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("project {path} does not exist (create it with `lens-inspect ingest ... --project {path}`)")]
    Missing { path: PathBuf },
    #[error("cannot open project {path}: {detail}")]
    Open { path: PathBuf, detail: String },
    #[error("project {path} is not a lens-inspect project: {detail}")]
    NotAProject { path: PathBuf, detail: String },
    #[error("project {path} is locked by another program (waited {waited_s} s); close it there and try again")]
    Locked { path: PathBuf, waited_s: u64 },
    #[error("project {path} has schema version {found}, newer than this program's {supported}: update lens-inspect")]
    NewerSchema { path: PathBuf, found: i64, supported: i64 },
    #[error("no candidate named {0:?} in the project")]
    NoSuchCandidate(String),
    #[error("{name} is a volunteer in this project: a researcher grants the role with `lens-inspect inspectors add {name} --role researcher --project ...`")]
    NotGranted { name: String },
    #[error("no inspector with id {0}")]
    NoSuchInspector(i64),
    #[error("pixels of candidate {name} cannot be read: {reason}")]
    Pixels { name: String, reason: SkipReason },
    #[error("project {path} is open read-only (the file or its folder cannot be written): nothing can be saved")]
    ReadOnly { path: PathBuf },
    #[error("project {path} is full (the disk, or a size limit, left no room): {detail}; nothing more was saved")]
    Full { path: PathBuf, detail: String },
    #[error("database error in {path}: {source}")]
    Sql { path: PathBuf, source: rusqlite::Error },
}

/// How long a write waits for another program's lock before giving up with [`ProjectError::Locked`].
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A candidate as stored (without pixels).
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateRow {
    pub id: i64,
    pub name: String,
    pub source: Option<ObjectSource>,
    pub width: usize,
    pub height: usize,
    pub ra_deg: Option<f64>,
    pub dec_deg: Option<f64>,
    pub tile: Option<String>,
    pub metadata: BTreeMap<String, serde_json::Value>,
    pub sky_sigma: Vec<f32>,
    pub truth_is_lens: Option<bool>,
    pub is_training: bool,
}

impl CandidateRow {
    /// The TAN WCS its file had, kept at ingest (for sky positions, regions and pixel scale).
    pub fn wcs(&self) -> Option<crate::survey::wcs::TanWcs> {
        self.metadata.get(ingest::WCS_KEY).and_then(|v| crate::survey::wcs::TanWcs::from_json(v).ok())
    }

    /// Arcseconds per pixel, as ingest found or was told it: the scale kept apart from the WCS
    /// (`--pixel-scale`, or a non-TAN header), else the WCS's; `None` when nothing gave one.
    pub fn pixel_arcsec(&self) -> Option<f64> {
        let kept = self.metadata.get(ingest::PIXEL_SCALE_KEY).and_then(serde_json::Value::as_f64);
        let scale = kept.or_else(|| self.wcs().map(|w| w.pixel_scale_arcsec()));
        // The range a cutout trusts, so that what the app says matches what the model sees.
        scale.filter(|s| crate::cutout::TRUSTED_PIXEL_ARCSEC.contains(s))
    }

    /// The bands its files leave blank, as ingest found them (empty for older projects and
    /// complete cutouts).
    pub fn blank_bands(&self) -> Vec<Band> {
        let kept = self.metadata.get(ingest::BLANK_BANDS_KEY).and_then(serde_json::Value::as_str).unwrap_or("");
        kept.split(',').filter_map(Band::parse).collect()
    }
}

/// Truth known for a candidate (simulations, challenge data, known lenses).
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    pub is_lens: bool,
    /// The other columns of the truth file.
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A candidate to add. `pixels` set stores the cutout inside the project (portable); otherwise
/// the project points at `spec.source`.
#[derive(Debug, Clone)]
pub struct NewCandidate {
    pub spec: ObjectSpec,
    pub width: usize,
    pub height: usize,
    pub sky_sigma: [f32; 4],
    pub pixels: Option<Vec<u8>>,
    pub truth: Option<Truth>,
    pub is_training: bool,
}

impl NewCandidate {
    /// Describes a cutout already read, with its sky noise measured.
    pub fn from_cutout(spec: ObjectSpec, cutout: &Cutout, store_pixels: bool) -> NewCandidate {
        let sky_sigma =
            Band::ALL.map(|b| crate::cutout::sky_stats(&cutout.valid_values(b)).map(|s| s.sigma).unwrap_or(0.0));
        NewCandidate {
            spec,
            width: cutout.width,
            height: cutout.height,
            sky_sigma,
            pixels: store_pixels.then(|| pixels_to_blob(cutout)),
            truth: None,
            is_training: false,
        }
    }
}

/// Counts for `lens-inspect info`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProjectCounts {
    pub candidates: i64,
    pub training_candidates: i64,
    pub with_truth: i64,
    pub inspectors: i64,
    pub grade_events: i64,
    pub graded_candidates: i64,
    pub models: i64,
    pub predictions: i64,
    pub schema_version: i64,
}

/// An open project. Holds the one writer connection; cheap readers can be opened beside it.
pub struct Project {
    conn: Connection,
    path: PathBuf,
    /// Opened read-only (the file or its folder cannot be written): everything can be looked
    /// at, nothing saved; the app says so in a banner.
    read_only: bool,
    /// For a session pack: the key its grade events are signed with ([`signing`]).
    pack_key: Option<Vec<u8>>,
}

/// A model version to store ([`Project::add_model_version_with_scores`]).
pub struct ModelVersionWrite<'a> {
    pub name: &'a str,
    pub card_json: &'a str,
    pub metrics_json: &'a str,
    /// The model file's bytes, when the project keeps the model itself (retrained versions).
    pub weights: Option<&'a [u8]>,
    /// Make it the model the project uses.
    pub current: bool,
}

/// The latest scores of candidates with known truth, as (score, is_lens): those no retraining
/// used, and those some retraining learnt from, picked its epoch with or decided on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TruthScores {
    pub held_out: Vec<(f64, bool)>,
    pub trained_on: Vec<(f64, bool)>,
}

/// Current time as stored: ISO 8601 UTC with milliseconds.
/// One stored model version, as the model history lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelVersionRow {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    /// What the version was judged on: for retrained versions `old`/`new` validation, `kept` and
    /// the ids of the labels it used.
    pub metrics: serde_json::Value,
    pub is_current: bool,
    pub has_weights: bool,
    /// Candidates it scored.
    pub predictions: usize,
}

pub fn now_iso() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A new random identifier (128 bits, hex). Built from the standard library's per-process random
/// hash keys, a clock and a counter: unique across machines without another dependency.
pub fn new_uid() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(count);
        h.write_u64(salt);
        h.write_u32(std::process::id());
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

/// Cutout pixels as the `pixels` table stores them: little-endian f32, bands u, g, r, i, NaN where
/// masked.
pub fn pixels_to_blob(cutout: &Cutout) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * cutout.width * cutout.height);
    for b in Band::ALL {
        for v in crate::survey::fits_write::band_with_nan(cutout, b) {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

pub fn blob_to_cutout(name: &str, width: usize, height: usize, blob: &[u8]) -> Option<Cutout> {
    let n = width * height;
    if blob.len() != 16 * n {
        return None;
    }
    let values: Vec<f32> = blob.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let planes: [Vec<f32>; 4] = std::array::from_fn(|b| values[b * n..(b + 1) * n].to_vec());
    Some(Cutout::from_planes(name, width, height, planes))
}

impl Project {
    /// Opens a project, creating the file and schema if it does not exist.
    pub fn create_or_open(path: &Path) -> Result<Project, ProjectError> {
        Self::open_with(path, true)
    }

    /// Opens a project that must already exist; one that cannot be written (a read-only file or
    /// folder, a write-protected medium) is opened read-only instead ([`Project::is_read_only`]).
    pub fn open_existing(path: &Path) -> Result<Project, ProjectError> {
        if !path.exists() {
            return Err(ProjectError::Missing { path: path.into() });
        }
        match Self::open_with(path, false) {
            Err(ProjectError::ReadOnly { .. }) => {
                log::warn!("{} cannot be written: opening it read-only", path.display());
                Self::open_read_only(path)
            }
            Err(ProjectError::Open { detail, .. }) if detail.contains("readonly") || detail.contains("read-only") => {
                Self::open_read_only(path)
            }
            other => other,
        }
    }

    /// Opens a project to look at only: no journal change, no migration, no writes.
    pub fn open_read_only(path: &Path) -> Result<Project, ProjectError> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| ProjectError::Open { path: path.into(), detail: e.to_string() })?;
        let project = Project { conn, path: path.into(), read_only: true, pack_key: None };
        project.conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| project.err(e))?;
        let version: i64 =
            project.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| project.err(e))?;
        if version != schema::CURRENT_VERSION {
            return Err(if version > schema::CURRENT_VERSION {
                ProjectError::NewerSchema { path: path.into(), found: version, supported: schema::CURRENT_VERSION }
            } else {
                ProjectError::Open {
                    path: path.into(),
                    detail: format!(
                        "schema {version} needs upgrading to {}, which a read-only project cannot be",
                        schema::CURRENT_VERSION
                    ),
                }
            });
        }
        Ok(project)
    }

    /// True when nothing can be saved (see [`Project::open_existing`]).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn open_with(path: &Path, create: bool) -> Result<Project, ProjectError> {
        use rusqlite::OpenFlags;
        let mut flags =
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| ProjectError::Open { path: path.into(), detail: e.to_string() })?;
        let mut project = Project { conn, path: path.into(), read_only: false, pack_key: None };
        project.configure()?;
        project.migrate()?;
        project.pack_key = project.meta("pack_key")?.and_then(|k| signing::unhex(&k));
        log::debug!("opened project {} (pack: {})", path.display(), project.pack_key.is_some());
        Ok(project)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> ProjectError {
        classify(&self.path, e)
    }

    fn configure(&mut self) -> Result<(), ProjectError> {
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.err(e))?;
        let mode: String = self.conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(ProjectError::Open {
                path: self.path.clone(),
                detail: format!("cannot switch to WAL (journal mode {mode})"),
            });
        }
        self.conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;").map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<(), ProjectError> {
        let version: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| self.err(e))?;
        if version > schema::CURRENT_VERSION {
            return Err(ProjectError::NewerSchema {
                path: self.path.clone(),
                found: version,
                supported: schema::CURRENT_VERSION,
            });
        }
        if version == 0 {
            // An empty file is a new project; a database with tables but no version is someone else's.
            let tables: i64 = self
                .conn
                .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            if tables > 0 {
                return Err(ProjectError::NotAProject {
                    path: self.path.clone(),
                    detail: "an SQLite database with other tables".into(),
                });
            }
        }
        for (k, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            let path = self.path.clone();
            let tx = self.conn.transaction().map_err(|e| classify(&path, e))?;
            tx.execute_batch(sql).map_err(|e| classify(&path, e))?;
            if k == 0 {
                tx.execute(
                    "INSERT INTO project_meta (key, value) VALUES ('project_id', ?1), ('created_at', ?2), ('secret', ?3)",
                    params![new_uid(), now_iso(), signing::new_secret()],
                )
                .map_err(|e| classify(&path, e))?;
            }
            tx.pragma_update(None, "user_version", (k + 1) as i64).map_err(|e| classify(&path, e))?;
            tx.commit().map_err(|e| classify(&path, e))?;
        }
        Ok(())
    }

    /// Caps the database at `pages` pages of its page size for this connection (SQLite's
    /// `max_page_count`): a grade that would grow it further is refused as [`ProjectError::Full`],
    /// exactly as on a full disk. For shared machines with quotas, and for testing that path.
    pub fn limit_pages(&self, pages: u32) -> Result<i64, ProjectError> {
        self.conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| r.get(0)).map_err(|e| self.err(e))
    }

    /// Pages the database file has now.
    pub fn page_count(&self) -> Result<i64, ProjectError> {
        self.conn.query_row("PRAGMA page_count", [], |r| r.get(0)).map_err(|e| self.err(e))
    }

    /// A `project_meta` value.
    pub fn meta(&self, key: &str) -> Result<Option<String>, ProjectError> {
        self.conn
            .query_row("SELECT value FROM project_meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The display settings (JSON) an inspector last used in this project; for someone who never
    /// set any, those the project (or the pack it is) carries.
    pub fn display_settings(&self, inspector: &str) -> Result<Option<String>, ProjectError> {
        match self.meta(&format!("display:{inspector}"))? {
            Some(v) => Ok(Some(v)),
            None => Ok(self.meta("display_settings")?.filter(|v| !v.is_empty())),
        }
    }

    /// Remembers an inspector's display settings (JSON) in the project.
    pub fn set_display_settings(&mut self, inspector: &str, json: &str) -> Result<(), ProjectError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO project_meta (key, value) VALUES (?1, ?2)",
                params![format!("display:{inspector}"), json],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The project's secret, which signs its packs ([`signing`]); made now for a project from
    /// before packs were signed.
    pub fn secret(&mut self) -> Result<Vec<u8>, ProjectError> {
        self.conn
            .execute("INSERT OR IGNORE INTO project_meta (key, value) VALUES ('secret', ?1)", [signing::new_secret()])
            .map_err(|e| self.err(e))?;
        let hex = self.meta("secret")?.unwrap_or_default();
        signing::unhex(&hex).filter(|k| k.len() >= 16).ok_or_else(|| ProjectError::NotAProject {
            path: self.path.clone(),
            detail: "its secret (project_meta.secret) is not 32 hex bytes".into(),
        })
    }

    /// The project's unique id (packs use it to refuse another project's grades).
    pub fn project_id(&self) -> Result<String, ProjectError> {
        self.conn
            .query_row("SELECT value FROM project_meta WHERE key = 'project_id'", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Names of all candidates already in the project.
    pub fn candidate_names(&self) -> Result<std::collections::HashSet<String>, ProjectError> {
        let mut stmt = self.conn.prepare("SELECT name FROM candidates").map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Adds candidates in one transaction; a name already present is left as it is. Returns how
    /// many were new.
    pub fn insert_candidates(&mut self, items: &[NewCandidate]) -> Result<usize, ProjectError> {
        let path = self.path.clone();
        let sql_err = |e| classify(&path, e);
        let now = now_iso();
        let tx = self.conn.transaction().map_err(|e| classify(&path, e))?;
        let mut added = 0;
        {
            let mut ins = tx
                .prepare(
                    "INSERT OR IGNORE INTO candidates (name, source, width, height, ra_deg, dec_deg, tile, metadata, sky_sigma,
                        truth_is_lens, truth, is_training, added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .map_err(sql_err)?;
            let mut pix = tx.prepare("INSERT INTO pixels (candidate_id, data) VALUES (?1, ?2)").map_err(sql_err)?;
            for c in items {
                let source = if c.pixels.is_some() {
                    None
                } else {
                    Some(serde_json::to_string(&c.spec.source).unwrap_or_default())
                };
                let n = ins
                    .execute(params![
                        c.spec.name,
                        source,
                        c.width as i64,
                        c.height as i64,
                        c.spec.ra_deg,
                        c.spec.dec_deg,
                        c.spec.tile,
                        serde_json::to_string(&c.spec.metadata).unwrap_or_else(|_| "{}".into()),
                        serde_json::to_string(&c.sky_sigma).unwrap_or_else(|_| "[]".into()),
                        c.truth.as_ref().map(|t| t.is_lens as i64),
                        c.truth.as_ref().map(|t| serde_json::to_string(&t.extra).unwrap_or_default()),
                        c.is_training as i64,
                        now,
                    ])
                    .map_err(|e| classify(&path, e))?;
                if n == 1 {
                    added += 1;
                    if let Some(p) = &c.pixels {
                        pix.execute(params![tx.last_insert_rowid(), p]).map_err(sql_err)?;
                    }
                }
            }
        }
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok(added)
    }

    /// Sets the truth of candidates by name; returns how many names were found.
    pub fn set_truths(&mut self, truths: &BTreeMap<String, Truth>) -> Result<usize, ProjectError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| classify(&path, e))?;
        let mut found = 0;
        {
            let mut stmt = tx
                .prepare("UPDATE candidates SET truth_is_lens = ?2, truth = ?3 WHERE name = ?1")
                .map_err(|e| classify(&path, e))?;
            for (name, t) in truths {
                found += stmt
                    .execute(params![name, t.is_lens as i64, serde_json::to_string(&t.extra).unwrap_or_default()])
                    .map_err(|e| classify(&path, e))?;
            }
        }
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok(found)
    }

    /// Sets the pixel scale (arcsec) kept with candidates, by name, over what their headers say
    /// ([`CandidateRow::pixel_arcsec`]); returns how many names were found. For `ingest
    /// --pixel-scale` run again on objects already in the project: the user learned the scale
    /// after the first ingest, and their scores must then be made again.
    pub fn set_pixel_scales(&mut self, names: &[String], arcsec: f64) -> Result<usize, ProjectError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| classify(&path, e))?;
        let mut found = 0;
        {
            let sql = format!(
                "UPDATE candidates SET metadata = json_set(metadata, '$.{}', ?2) WHERE name = ?1",
                ingest::PIXEL_SCALE_KEY
            );
            let mut stmt = tx.prepare(&sql).map_err(|e| classify(&path, e))?;
            for name in names {
                found += stmt.execute(params![name, arcsec]).map_err(|e| classify(&path, e))?;
            }
        }
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok(found)
    }

    const CANDIDATE_COLUMNS: &'static str =
        "id, name, source, width, height, ra_deg, dec_deg, tile, metadata, sky_sigma, truth_is_lens, is_training";

    fn candidate_from_row(r: &rusqlite::Row) -> rusqlite::Result<CandidateRow> {
        let source: Option<String> = r.get(2)?;
        let metadata: String = r.get(8)?;
        let sky: String = r.get(9)?;
        Ok(CandidateRow {
            id: r.get(0)?,
            name: r.get(1)?,
            source: source.and_then(|s| serde_json::from_str(&s).ok()),
            width: r.get::<_, i64>(3)? as usize,
            height: r.get::<_, i64>(4)? as usize,
            ra_deg: r.get(5)?,
            dec_deg: r.get(6)?,
            tile: r.get(7)?,
            metadata: serde_json::from_str(&metadata).unwrap_or_default(),
            sky_sigma: serde_json::from_str(&sky).unwrap_or_default(),
            truth_is_lens: r.get::<_, Option<i64>>(10)?.map(|v| v != 0),
            is_training: r.get::<_, i64>(11)? != 0,
        })
    }

    pub fn candidate_by_name(&self, name: &str) -> Result<CandidateRow, ProjectError> {
        let sql = format!("SELECT {} FROM candidates WHERE name = ?1", Self::CANDIDATE_COLUMNS);
        self.conn
            .query_row(&sql, [name], Self::candidate_from_row)
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| ProjectError::NoSuchCandidate(name.into()))
    }

    /// The candidates with these ids (in id order; unknown ids are left out).
    pub fn candidates_by_ids(&self, ids: &[i64]) -> Result<Vec<CandidateRow>, ProjectError> {
        let sql = format!("SELECT {} FROM candidates WHERE id = ?1", Self::CANDIDATE_COLUMNS);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = stmt.query_row([id], Self::candidate_from_row).optional().map_err(|e| self.err(e))? {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// All candidates, in insertion order.
    pub fn candidates(&self) -> Result<Vec<CandidateRow>, ProjectError> {
        let sql = format!("SELECT {} FROM candidates ORDER BY id", Self::CANDIDATE_COLUMNS);
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], Self::candidate_from_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Reads a candidate's pixels: from the project if stored inside, else from its files.
    pub fn load_cutout(&self, c: &CandidateRow) -> Result<Cutout, ProjectError> {
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT data FROM pixels WHERE candidate_id = ?1", [c.id], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        let pixels_err = |reason| ProjectError::Pixels { name: c.name.clone(), reason };
        // The pixel scale kept at ingest; for stored pixels the only one there is, and for files
        // the one that wins over their header (a scale the user gave).
        let scale = c.pixel_arcsec();
        if let Some(blob) = blob {
            return blob_to_cutout(&c.name, c.width, c.height, &blob)
                .map(|cutout| cutout.with_pixel_scale(scale))
                .ok_or_else(|| pixels_err(SkipReason::Internal("stored pixels have the wrong size".into())));
        }
        let source = c
            .source
            .clone()
            .ok_or_else(|| pixels_err(SkipReason::Internal("no pixels and no source recorded".into())))?;
        let spec = ObjectSpec {
            name: c.name.clone(),
            source,
            ra_deg: None,
            dec_deg: None,
            tile: None,
            metadata: BTreeMap::new(),
        };
        let cutout = crate::survey::load(&spec).map_err(pixels_err)?;
        Ok(match scale {
            Some(s) => cutout.with_pixel_scale(Some(s)),
            None => cutout,
        })
    }

    /// The survey-wide display scale: the median r-band sky sigma over candidates.
    pub fn flux_scale(&self) -> Result<FluxScale, ProjectError> {
        let mut stmt = self.conn.prepare("SELECT sky_sigma FROM candidates").map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        let mut sig = Vec::new();
        for s in rows {
            let s = s.map_err(|e| self.err(e))?;
            if let Ok(v) = serde_json::from_str::<Vec<f32>>(&s) {
                if let Some(&r) = v.get(Band::R.index()) {
                    if r > 0.0 && r.is_finite() {
                        sig.push(r);
                    }
                }
            }
        }
        Ok(FluxScale { noise_r: crate::cutout::median(&sig).unwrap_or(1.0) })
    }

    /// Finds an inspector by name, creating them with `role` if new.
    pub fn inspector(&mut self, name: &str, role: Role) -> Result<Inspector, ProjectError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO inspectors (name, role, created_at) VALUES (?1, ?2, ?3)",
                params![name, role.as_str(), now_iso()],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .query_row("SELECT id, name, role FROM inspectors WHERE name = ?1", [name], |r| {
                let role: String = r.get(2)?;
                Ok(Inspector { id: r.get(0)?, name: r.get(1)?, role: Role::parse(&role).unwrap_or(Role::Volunteer) })
            })
            .map_err(|e| self.err(e))
    }

    /// Ids of many inspectors by name, creating the missing ones with `role`, in one transaction
    /// (a crowd's import names thousands: one commit each would take minutes).
    pub fn inspectors_by_names<'a>(
        &mut self,
        names: impl IntoIterator<Item = &'a str>,
        role: Role,
    ) -> Result<HashMap<String, i64>, ProjectError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| classify(&path, e))?;
        let mut out = HashMap::new();
        {
            let mut ins = tx
                .prepare("INSERT OR IGNORE INTO inspectors (name, role, created_at) VALUES (?1, ?2, ?3)")
                .map_err(|e| classify(&path, e))?;
            let mut get = tx.prepare("SELECT id FROM inspectors WHERE name = ?1").map_err(|e| classify(&path, e))?;
            let now = now_iso();
            for name in names {
                if out.contains_key(name) {
                    continue;
                }
                ins.execute(params![name, role.as_str(), now]).map_err(|e| classify(&path, e))?;
                let id: i64 = get.query_row([name], |r| r.get(0)).map_err(|e| classify(&path, e))?;
                out.insert(name.to_string(), id);
            }
        }
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok(out)
    }

    /// Who someone is when they open the project by name (the start screen): an existing
    /// inspector keeps the role they were granted, and may grade as a volunteer; a new name is a
    /// volunteer, except the project's first inspector (its creator), who may be a researcher.
    /// Asking for the researcher role without it is refused, so nobody sees scores or other
    /// people's grades by ticking a box.
    pub fn sign_in(&mut self, name: &str, wanted: Role) -> Result<Inspector, ProjectError> {
        let existing = self.inspectors()?;
        let granted = match existing.iter().find(|i| i.name == name) {
            Some(i) => i.role,
            None if existing.is_empty() => wanted,
            None => Role::Volunteer,
        };
        if wanted == Role::Researcher && granted != Role::Researcher {
            return Err(ProjectError::NotGranted { name: name.into() });
        }
        let mut inspector = self.inspector(name, granted)?;
        inspector.role = wanted;
        Ok(inspector)
    }

    /// Grants (or takes away) a role: `inspectors add NAME --role ...`.
    pub fn set_role(&mut self, name: &str, role: Role) -> Result<Inspector, ProjectError> {
        let i = self.inspector(name, role)?;
        self.conn
            .execute("UPDATE inspectors SET role = ?2 WHERE id = ?1", params![i.id, role.as_str()])
            .map_err(|e| self.err(e))?;
        Ok(Inspector { role, ..i })
    }

    pub fn inspectors(&self) -> Result<Vec<Inspector>, ProjectError> {
        let mut stmt =
            self.conn.prepare("SELECT id, name, role FROM inspectors ORDER BY id").map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let role: String = r.get(2)?;
                Ok(Inspector { id: r.get(0)?, name: r.get(1)?, role: Role::parse(&role).unwrap_or(Role::Volunteer) })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Starts a grading session for an inspector; grades carry its id.
    pub fn start_session(&mut self, inspector_id: i64, origin: &str) -> Result<String, ProjectError> {
        let id = new_uid();
        self.conn
            .execute(
                "INSERT INTO sessions (id, inspector_id, started_at, origin) VALUES (?1, ?2, ?3, ?4)",
                params![id, inspector_id, now_iso(), origin],
            )
            .map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// Appends a grade event. When this returns `Ok`, the event is on disk (WAL,
    /// `synchronous=FULL`, autocommit): a kill or power cut afterwards does not lose it.
    pub fn record_grade(&mut self, g: &NewGrade) -> Result<GradeEvent, ProjectError> {
        if self.read_only {
            return Err(ProjectError::ReadOnly { path: self.path.clone() });
        }
        let uid = new_uid();
        let time = now_iso();
        let points = if g.points.is_empty() { None } else { serde_json::to_string(&g.points).ok() };
        let path = self.path.clone();
        // In a pack, the event and the resealed events MAC commit together.
        let tx = self.conn.transaction().map_err(|e| classify(&path, e))?;
        tx.execute(
            "INSERT INTO grade_events (uid, candidate_id, inspector_id, score, time, session_id, comment, points)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                uid,
                g.candidate_id,
                g.inspector_id,
                g.score.map(|s| s.value() as i64),
                time,
                g.session_id,
                g.comment,
                points
            ],
        )
        .map_err(|e| classify(&path, e))?;
        let id = tx.last_insert_rowid();
        if let Some(key) = &self.pack_key {
            signing::reseal_events(&tx, key).map_err(|e| classify(&path, e))?;
        }
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok(GradeEvent {
            id,
            uid,
            candidate_id: g.candidate_id,
            inspector_id: g.inspector_id,
            score: g.score,
            time,
            session_id: g.session_id.clone(),
            comment: g.comment.clone(),
            points: g.points.clone(),
        })
    }

    /// Adds events from outside (imports, packs) in one transaction, each once: an event whose
    /// uid is already stored is left alone. Candidates are matched by name (unknown ones are
    /// skipped: callers check first), inspectors by name (created with `role` when new), sessions
    /// created as needed. Returns (added, already present).
    pub fn insert_foreign_events(
        &mut self,
        events: &[import::ForeignEvent],
        role: Role,
    ) -> Result<(usize, usize), ProjectError> {
        let (candidates, inspectors) = import::lookups(self, events, role)?;
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| classify(&path, e))?;
        let (mut added, mut present) = (0, 0);
        {
            let mut ins = tx
                .prepare(
                    "INSERT OR IGNORE INTO grade_events (uid, candidate_id, inspector_id, score, time, session_id, comment, points)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(|e| classify(&path, e))?;
            let mut session = tx
                .prepare(
                    "INSERT OR IGNORE INTO sessions (id, inspector_id, started_at, origin) VALUES (?1, ?2, ?3, 'pack')",
                )
                .map_err(|e| classify(&path, e))?;
            for e in events {
                let (Some(&cid), Some(&iid)) = (candidates.get(&e.candidate), inspectors.get(&e.inspector)) else {
                    continue;
                };
                if let Some(s) = &e.session_id {
                    session.execute(params![s, iid, e.time]).map_err(|e| classify(&path, e))?;
                }
                let n = ins
                    .execute(params![
                        e.uid,
                        cid,
                        iid,
                        e.score.map(|s| s.value() as i64),
                        e.time,
                        e.session_id,
                        e.comment,
                        e.points
                    ])
                    .map_err(|e| classify(&path, e))?;
                if n == 1 {
                    added += 1;
                } else {
                    present += 1;
                }
            }
        }
        if let Some(key) = &self.pack_key {
            signing::reseal_events(&tx, key).map_err(|e| classify(&path, e))?;
        }
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok((added, present))
    }

    /// Every grade event, oldest first.
    pub fn grade_events(&self) -> Result<Vec<GradeEvent>, ProjectError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, uid, candidate_id, inspector_id, score, time, session_id, comment, points FROM grade_events ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let points: Option<String> = r.get(8)?;
                Ok(GradeEvent {
                    id: r.get(0)?,
                    uid: r.get(1)?,
                    candidate_id: r.get(2)?,
                    inspector_id: r.get(3)?,
                    score: r.get::<_, Option<i64>>(4)?.and_then(Score::from_value),
                    time: r.get(5)?,
                    session_id: r.get(6)?,
                    comment: r.get(7)?,
                    points: points.and_then(|p| serde_json::from_str(&p).ok()).unwrap_or_default(),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Registers a model version; its predictions refer to the returned id.
    pub fn add_model_version(
        &mut self,
        name: &str,
        card_json: &str,
        metrics_json: &str,
        parent: Option<i64>,
    ) -> Result<i64, ProjectError> {
        self.conn
            .execute(
                "INSERT INTO model_versions (name, created_at, parent_id, card, metrics) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, now_iso(), parent, card_json, metrics_json],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Registers a model version with its weights (a model file's bytes); `current` marks it as
    /// the one the project uses.
    pub fn add_model_version_with_weights(
        &mut self,
        name: &str,
        card_json: &str,
        metrics_json: &str,
        weights: &[u8],
        current: bool,
    ) -> Result<i64, ProjectError> {
        let v = ModelVersionWrite { name, card_json, metrics_json, weights: Some(weights), current };
        self.add_model_version_with_scores(&v, &[])
    }

    /// Stores a model version and its scores in one transaction (and makes it the current model
    /// when `v.current`): a version never becomes current without its scores, and a kill before
    /// the commit leaves the project as it was.
    pub fn add_model_version_with_scores(
        &mut self,
        v: &ModelVersionWrite<'_>,
        scores: &[(i64, f32)],
    ) -> Result<i64, ProjectError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| classify(&path, e))?;
        if v.current {
            tx.execute("UPDATE model_versions SET is_current = 0", []).map_err(|e| classify(&path, e))?;
        }
        tx.execute(
            "INSERT INTO model_versions (name, created_at, card, metrics, weights, is_current) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![v.name, now_iso(), v.card_json, v.metrics_json, v.weights, v.current as i64],
        )
        .map_err(|e| classify(&path, e))?;
        let id = tx.last_insert_rowid();
        insert_predictions(&tx, id, scores).map_err(|e| classify(&path, e))?;
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok(id)
    }

    /// Candidates whose labels any stored retraining used (to fit, to pick an epoch or to
    /// decide): truth metrics leave them out, since a model is not judged on what it learnt from.
    pub fn retraining_label_ids(&self) -> Result<std::collections::HashSet<i64>, ProjectError> {
        let mut out = std::collections::HashSet::new();
        for v in self.model_history()? {
            if let Some(ids) = v.metrics.get("label_ids").and_then(|l| l.as_array()) {
                out.extend(ids.iter().filter_map(|x| x.as_i64()));
            }
        }
        Ok(out)
    }

    /// Every model version, oldest first, with its metrics: the model history the app shows.
    pub fn model_history(&self) -> Result<Vec<ModelVersionRow>, ProjectError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, name, created_at, metrics, is_current, weights IS NOT NULL,
                        (SELECT COUNT(*) FROM predictions WHERE model_version_id = model_versions.id)
                 FROM model_versions ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let metrics: String = r.get(3)?;
                Ok(ModelVersionRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    created_at: r.get(2)?,
                    metrics: serde_json::from_str(&metrics).unwrap_or(serde_json::Value::Null),
                    is_current: r.get::<_, i64>(4)? != 0,
                    has_weights: r.get(5)?,
                    predictions: r.get::<_, i64>(6)? as usize,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The weights (model file bytes) of the project's current model, if one was stored.
    pub fn current_model_bytes(&self) -> Result<Option<Vec<u8>>, ProjectError> {
        self.conn
            .query_row("SELECT weights FROM model_versions WHERE is_current = 1 AND weights IS NOT NULL ORDER BY id DESC LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Stores one model version's scores (replacing earlier scores of the same version).
    pub fn store_predictions(&mut self, model_version_id: i64, scores: &[(i64, f32)]) -> Result<(), ProjectError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| classify(&path, e))?;
        insert_predictions(&tx, model_version_id, scores).map_err(|e| classify(&path, e))?;
        tx.commit().map_err(|e| classify(&path, e))
    }

    /// The most recent model version that scored anything: its name (as `name#id`) and its
    /// scores by candidate id. A version stored without scores (a rejected retraining) does not
    /// hide the scores people work with.
    pub fn latest_predictions(&self) -> Result<(Option<String>, std::collections::HashMap<i64, f32>), ProjectError> {
        let version: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT id, name FROM model_versions WHERE id = (SELECT max(model_version_id) FROM predictions)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((id, name)) = version else { return Ok((None, Default::default())) };
        Ok((Some(format!("{name}#{id}")), self.predictions_of(id)?))
    }

    /// Replaces candidates' stored sources (JSON of `ObjectSource`), all in one transaction.
    pub fn set_sources(&mut self, sources: &[(i64, String)]) -> Result<(), ProjectError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| classify(&path, e))?;
        {
            let mut stmt =
                tx.prepare("UPDATE candidates SET source = ?2 WHERE id = ?1").map_err(|e| classify(&path, e))?;
            for (id, source) in sources {
                stmt.execute(params![id, source]).map_err(|e| classify(&path, e))?;
            }
        }
        tx.commit().map_err(|e| classify(&path, e))
    }

    /// Every score one model version gave, by candidate id.
    pub fn predictions_of(&self, model_version_id: i64) -> Result<std::collections::HashMap<i64, f32>, ProjectError> {
        let mut stmt = self
            .conn
            .prepare("SELECT candidate_id, score FROM predictions WHERE model_version_id = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([model_version_id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)? as f32)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// (score, is_lens) of every candidate with truth, scored by the most recent scoring version.
    pub fn latest_scores_with_truth(&self) -> Result<TruthScores, ProjectError> {
        let used = self.retraining_label_ids()?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.candidate_id, p.score, c.truth_is_lens FROM predictions p JOIN candidates c ON c.id = p.candidate_id
                 WHERE c.truth_is_lens IS NOT NULL AND p.model_version_id = (SELECT max(model_version_id) FROM predictions)",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?, r.get::<_, i64>(2)? != 0)))
            .map_err(|e| self.err(e))?;
        let mut out = TruthScores::default();
        for row in rows {
            let (id, score, truth) = row.map_err(|e| self.err(e))?;
            if used.contains(&id) { &mut out.trained_on } else { &mut out.held_out }.push((score, truth));
        }
        Ok(out)
    }

    pub fn counts(&self) -> Result<ProjectCounts, ProjectError> {
        let one = |sql: &str| -> Result<i64, ProjectError> {
            self.conn.query_row(sql, [], |r| r.get(0)).map_err(|e| self.err(e))
        };
        Ok(ProjectCounts {
            candidates: one("SELECT count(*) FROM candidates")?,
            training_candidates: one("SELECT count(*) FROM candidates WHERE is_training = 1")?,
            with_truth: one("SELECT count(*) FROM candidates WHERE truth_is_lens IS NOT NULL")?,
            inspectors: one("SELECT count(*) FROM inspectors")?,
            grade_events: one("SELECT count(*) FROM grade_events")?,
            graded_candidates: one("SELECT count(DISTINCT candidate_id) FROM grade_events WHERE score IS NOT NULL")?,
            models: one("SELECT count(*) FROM model_versions")?,
            predictions: one("SELECT count(*) FROM predictions")?,
            schema_version: one("PRAGMA user_version")?,
        })
    }

    /// `PRAGMA integrity_check`: "ok" for a sound database.
    pub fn integrity_check(&self) -> Result<String, ProjectError> {
        self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| self.err(e))
    }
}

/// Maps a SQLite error to the project's error, recognising a lock held by another program and a
/// file that is not a database, so the user reads what happened rather than an SQLite code.
/// One version's scores, inside the caller's transaction (a later score of a candidate replaces
/// an earlier one of the same version).
fn insert_predictions(tx: &rusqlite::Transaction, version: i64, scores: &[(i64, f32)]) -> rusqlite::Result<()> {
    let mut stmt =
        tx.prepare("INSERT OR REPLACE INTO predictions (model_version_id, candidate_id, score) VALUES (?1, ?2, ?3)")?;
    for (cid, s) in scores {
        stmt.execute(params![version, cid, *s as f64])?;
    }
    Ok(())
}

fn classify(path: &Path, e: rusqlite::Error) -> ProjectError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            ProjectError::Locked { path: path.into(), waited_s: BUSY_TIMEOUT.as_secs() }
        }
        Some(ErrorCode::NotADatabase) => {
            ProjectError::NotAProject { path: path.into(), detail: "not an SQLite database".into() }
        }
        Some(ErrorCode::ReadOnly) => ProjectError::ReadOnly { path: path.into() },
        Some(ErrorCode::DiskFull) => ProjectError::Full { path: path.into(), detail: e.to_string() },
        _ => ProjectError::Sql { path: path.into(), source: e },
    }
}
