//! Session packs: a single file to grade offline, and merging its grades back (SPEC 7).
//!
//! A pack is itself a project database (so the GUI opens it like any project) holding a chosen
//! set of candidates with their pixels inside, the display settings, optionally the model's
//! scores, and in `project_meta`: `kind = pack`, the source project's id and a checksum of the
//! candidates and pixels it was made with. Merging refuses — before writing anything — a pack
//! that is damaged or cut short (SQLite's integrity check), from a newer program, from another
//! project, or whose candidates or pixels were changed (checksum). Events keep their uid, time,
//! inspector and session, so merging twice adds nothing and merge order does not matter.

use super::import::ForeignEvent;
use super::{pixels_to_blob, NewCandidate, Project, ProjectError, Role, Score};
use crate::survey::{ObjectSource, ObjectSpec};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error("pack {path} cannot be used: {reason}; nothing was merged")]
    Refused { path: PathBuf, reason: String },
    #[error("cannot write pack {path}: {detail}")]
    Write { path: PathBuf, detail: String },
}

#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// The inspector the pack is for (recorded; the GUI starts with them).
    pub inspector: Option<String>,
    /// Candidate names to include, in this order.
    pub names: Vec<String>,
    /// Copy the latest model's scores (researchers; volunteers never see them anyway).
    pub with_scores: bool,
    /// Display settings to carry (JSON of `render::DisplaySettings`).
    pub display_json: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MergeReport {
    pub added: usize,
    pub already_present: usize,
    pub inspectors: Vec<String>,
}

/// Checksum of what a pack was made with: candidate names, sizes and pixels, in name order.
fn content_checksum(conn: &Connection) -> rusqlite::Result<String> {
    let mut stmt = conn.prepare(
        "SELECT c.name, c.width, c.height, p.data FROM candidates c LEFT JOIN pixels p ON p.candidate_id = c.id ORDER BY c.name",
    )?;
    let mut h = crate::hash::Fnv1a::default();
    let mut feed = |bytes: &[u8]| h.feed(bytes);
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let name: String = r.get(0)?;
        feed(name.as_bytes());
        feed(&r.get::<_, i64>(1)?.to_le_bytes());
        feed(&r.get::<_, i64>(2)?.to_le_bytes());
        feed(&r.get::<_, Option<Vec<u8>>>(3)?.unwrap_or_default());
        feed(&[0xff]);
    }
    Ok(format!("{:016x}", h.finish()))
}

/// Writes a pack of the named candidates. The file is built under a temporary name and renamed,
/// so a half-written pack never exists under `out`.
pub fn export_pack(project: &Project, out: &Path, options: &PackOptions) -> Result<usize, PackError> {
    let werr = |detail: String| PackError::Write { path: out.into(), detail };
    let tmp = out.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let mut pack = Project::create_or_open(&tmp)?;
    let mut items = Vec::with_capacity(options.names.len());
    let mut truth_rows = Vec::new();
    for name in &options.names {
        let row = project.candidate_by_name(name)?;
        let cutout = project.load_cutout(&row)?;
        let spec = ObjectSpec {
            name: row.name.clone(),
            source: ObjectSource::File { path: PathBuf::from("(inside the pack)") },
            ra_deg: row.ra_deg,
            dec_deg: row.dec_deg,
            tile: row.tile.clone(),
            metadata: row.metadata.clone(),
        };
        let mut c = NewCandidate::from_cutout(spec, &cutout, false);
        c.pixels = Some(pixels_to_blob(&cutout));
        c.is_training = row.is_training;
        items.push(c);
        if row.is_training {
            truth_rows.push((row.name.clone(), row.truth_is_lens));
        }
    }
    pack.insert_candidates(&items)?;
    // Training candidates keep their truth: the instant feedback and SWAP need it.
    for (name, truth) in truth_rows {
        pack.conn
            .execute("UPDATE candidates SET truth_is_lens = ?2 WHERE name = ?1", params![name, truth.map(|t| t as i64)])
            .map_err(|e| werr(e.to_string()))?;
    }
    if let Some(who) = &options.inspector {
        let role =
            project.inspectors()?.into_iter().find(|i| &i.name == who).map(|i| i.role).unwrap_or(Role::Volunteer);
        pack.inspector(who, role)?;
    }
    if options.with_scores {
        let (version, scores) = project.latest_predictions()?;
        if let Some(v) = version {
            let id = pack.add_model_version(&v, "{}", "{}", None)?;
            let ids: BTreeMap<String, i64> = pack.candidates()?.into_iter().map(|c| (c.name, c.id)).collect();
            let src: BTreeMap<i64, String> = project.candidates()?.into_iter().map(|c| (c.id, c.name)).collect();
            let mapped: Vec<(i64, f32)> =
                scores.iter().filter_map(|(cid, s)| ids.get(src.get(cid)?).map(|&pid| (pid, *s))).collect();
            pack.store_predictions(id, &mapped)?;
        }
    }
    let checksum = content_checksum(&pack.conn).map_err(|e| werr(e.to_string()))?;
    let meta = [
        ("kind", "pack".to_string()),
        ("source_project_id", project.project_id()?),
        ("pack_created_at", super::now_iso()),
        ("content_checksum", checksum),
        ("pack_inspector", options.inspector.clone().unwrap_or_default()),
        ("display_settings", options.display_json.clone().unwrap_or_default()),
    ];
    for (k, v) in meta {
        pack.conn
            .execute("INSERT OR REPLACE INTO project_meta (key, value) VALUES (?1, ?2)", params![k, v])
            .map_err(|e| werr(e.to_string()))?;
    }
    // One self-contained file: fold the WAL in and leave no side files.
    pack.conn
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;")
        .map_err(|e| werr(e.to_string()))?;
    drop(pack);
    std::fs::rename(&tmp, out).map_err(|e| werr(e.to_string()))?;
    Ok(items.len())
}

/// Checks a pack and reads its grade events, without changing anything.
fn read_pack(pack_path: &Path, project_id: &str) -> Result<Vec<ForeignEvent>, PackError> {
    let refuse = |reason: String| PackError::Refused { path: pack_path.into(), reason };
    if !pack_path.is_file() {
        return Err(refuse("no such file".into()));
    }
    let conn =
        Connection::open_with_flags(pack_path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| refuse(format!("not readable ({e})")))?;
    let damaged = |e: rusqlite::Error| refuse(format!("damaged or cut short ({e})"));
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(damaged)?;
    if check != "ok" {
        return Err(refuse(format!("damaged or cut short (integrity check: {check})")));
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(damaged)?;
    if version > super::schema::CURRENT_VERSION {
        return Err(refuse(format!(
            "made by a newer lens-inspect (schema {version}, this program reads up to {})",
            super::schema::CURRENT_VERSION
        )));
    }
    let meta = |key: &str| -> Result<Option<String>, PackError> {
        conn.query_row("SELECT value FROM project_meta WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(damaged)
    };
    if meta("kind")?.as_deref() != Some("pack") {
        return Err(refuse("it is not a session pack".into()));
    }
    if meta("source_project_id")?.as_deref() != Some(project_id) {
        return Err(refuse("it was made from another project".into()));
    }
    let stored = meta("content_checksum")?.unwrap_or_default();
    if content_checksum(&conn).map_err(damaged)? != stored {
        return Err(refuse("its candidates or pixels were changed after it was made (checksum mismatch)".into()));
    }
    let mut stmt = conn
        .prepare(
            "SELECT e.uid, c.name, i.name, e.score, e.time, e.session_id, e.comment, e.points
             FROM grade_events e JOIN candidates c ON c.id = e.candidate_id JOIN inspectors i ON i.id = e.inspector_id ORDER BY e.id",
        )
        .map_err(damaged)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(ForeignEvent {
                uid: r.get(0)?,
                candidate: r.get(1)?,
                inspector: r.get(2)?,
                score: r.get::<_, Option<i64>>(3)?.and_then(Score::from_value),
                time: r.get(4)?,
                session_id: r.get(5)?,
                comment: r.get(6)?,
                points: r.get(7)?,
            })
        })
        .map_err(damaged)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(damaged)
}

/// Merges a pack's grades into the project (idempotent). Refused packs change nothing.
pub fn merge_pack(project: &mut Project, pack_path: &Path) -> Result<MergeReport, PackError> {
    let events = read_pack(pack_path, &project.project_id()?)?;
    let known = project.candidate_names()?;
    if let Some(e) = events.iter().find(|e| !known.contains(&e.candidate)) {
        return Err(PackError::Refused {
            path: pack_path.into(),
            reason: format!("it grades candidate {:?}, which the project does not have", e.candidate),
        });
    }
    let mut inspectors: Vec<String> = events.iter().map(|e| e.inspector.clone()).collect();
    inspectors.sort();
    inspectors.dedup();
    let (added, already_present) = project.insert_foreign_events(&events, Role::Volunteer)?;
    Ok(MergeReport { added, already_present, inspectors })
}
