//! Session packs: a single file to grade offline, and merging its grades back (SPEC 7).
//!
//! A pack is itself a project database (so the GUI opens it like any project) holding a chosen
//! set of candidates with their pixels inside, the display settings, optionally the model's
//! scores, and in `project_meta`: `kind = pack`, the source project's id, the pack's id and
//! inspector, and its signatures ([`super::signing`]): a content MAC under the project's secret
//! and the key its events are signed with. Merging refuses, before writing anything, a pack that
//! is damaged or cut short (SQLite's integrity check), from a newer program, from another
//! project, not signed by this project, whose candidates, pixels, scores or settings changed,
//! whose events were edited outside the program, or that holds grades by anyone but its
//! inspector. Events keep their uid, time, inspector and session, so merging twice adds nothing
//! and merge order does not matter.

use super::import::ForeignEvent;
use super::signing;
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
    /// The inspector the pack is for: the only one whose grades it may bring back.
    pub inspector: String,
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

/// The metadata a volunteer's pack keeps: where the pixels are on the sky and how large they are
/// (the WCS, a pixel scale kept apart from it), and which bands hold no image. They say nothing of the model or the truth, and
/// without them the pack's maps would be of a cutout the model never saw (one of another scale
/// taken at 0.2") and the cursor would have no sky position.
fn geometry_only(
    metadata: &std::collections::BTreeMap<String, serde_json::Value>,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let keep = [super::ingest::WCS_KEY, super::ingest::PIXEL_SCALE_KEY, super::ingest::BLANK_BANDS_KEY];
    metadata.iter().filter(|(k, _)| keep.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Writes a pack of the named candidates. The file is built under a temporary name and renamed,
/// so a half-written pack never exists under `out`.
pub fn export_pack(project: &mut Project, out: &Path, options: &PackOptions) -> Result<usize, PackError> {
    let werr = |detail: String| PackError::Write { path: out.into(), detail };
    if options.inspector.trim().is_empty() {
        return Err(werr("a pack is made for one inspector: name them".into()));
    }
    let secret = project.secret()?;
    let who = &options.inspector;
    let role = project.inspectors()?.into_iter().find(|i| &i.name == who).map(|i| i.role).unwrap_or(Role::Volunteer);
    // A volunteer's pack holds nothing that reveals what the model or anyone else thinks, or the
    // truth: no scores, no truth, no metadata but the geometry (a simulation's kind lives
    // there), and no mark of which candidates are training candidates. Merging maps grades back by name, where the
    // project's own truth still teaches SWAP.
    let researcher = role == Role::Researcher;
    if options.with_scores && !researcher {
        return Err(werr(format!("{who} is a volunteer: a volunteer's pack carries no model scores")));
    }
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
            metadata: if researcher { row.metadata.clone() } else { geometry_only(&row.metadata) },
        };
        let mut c = NewCandidate::from_cutout(spec, &cutout, false);
        c.pixels = Some(pixels_to_blob(&cutout));
        c.is_training = row.is_training && researcher;
        items.push(c);
        if row.is_training && researcher {
            truth_rows.push((row.name.clone(), row.truth_is_lens));
        }
    }
    pack.insert_candidates(&items)?;
    // In a researcher's pack, training candidates keep their truth.
    for (name, truth) in truth_rows {
        pack.conn
            .execute("UPDATE candidates SET truth_is_lens = ?2 WHERE name = ?1", params![name, truth.map(|t| t as i64)])
            .map_err(|e| werr(e.to_string()))?;
    }
    pack.inspector(who, role)?;
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
    let pack_id = super::new_uid();
    let meta = [
        ("kind", "pack".to_string()),
        ("source_project_id", project.project_id()?),
        ("pack_id", pack_id.clone()),
        ("pack_created_at", super::now_iso()),
        ("pack_inspector", who.clone()),
        ("display_settings", options.display_json.clone().unwrap_or_default()),
        ("pack_key", signing::hex(&signing::pack_key(&secret, &pack_id, who))),
    ];
    let set = |k: &str, v: &str| {
        pack.conn
            .execute("INSERT OR REPLACE INTO project_meta (key, value) VALUES (?1, ?2)", params![k, v])
            .map_err(|e| werr(e.to_string()))
    };
    for (k, v) in &meta {
        set(k, v)?;
    }
    // The pack's own secret is of no use to anyone; the content MAC is under the project's.
    pack.conn.execute("DELETE FROM project_meta WHERE key = 'secret'", []).map_err(|e| werr(e.to_string()))?;
    let content_mac = signing::sign_content(&pack.conn, &secret).map_err(|e| werr(e.to_string()))?.finish_hex();
    set("content_mac", &content_mac)?;
    let key = signing::pack_key(&secret, &pack_id, who);
    signing::reseal_events(&pack.conn, &key).map_err(|e| werr(e.to_string()))?;
    // One self-contained file: fold the WAL in and leave no side files.
    pack.conn
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;")
        .map_err(|e| werr(e.to_string()))?;
    drop(pack);
    std::fs::rename(&tmp, out).map_err(|e| werr(e.to_string()))?;
    Ok(items.len())
}

/// Checks a pack and reads its grade events, without changing anything.
fn read_pack(pack_path: &Path, project_id: &str, secret: &[u8]) -> Result<Vec<ForeignEvent>, PackError> {
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
    let (Some(pack_id), Some(inspector), Some(content_mac)) =
        (meta("pack_id")?, meta("pack_inspector")?, meta("content_mac")?)
    else {
        return Err(refuse("it carries no signature (made by an older lens-inspect?): make a new pack".into()));
    };
    let key = signing::pack_key(secret, &pack_id, &inspector);
    let stored_key = meta("pack_key")?.unwrap_or_default();
    if signing::unhex(&stored_key).as_deref() != Some(key.as_slice()) {
        return Err(refuse(format!(
            "its signing key was not made by this project for {inspector:?} (signature mismatch)"
        )));
    }
    if !signing::sign_content(&conn, secret).map_err(damaged)?.verify_hex(&content_mac) {
        return Err(refuse(
            "its candidates, pixels, scores or settings were changed after it was made (signature mismatch)".into(),
        ));
    }
    let events_mac = meta("events_mac")?.unwrap_or_default();
    if !signing::sign_events(&conn, &key).map_err(damaged)?.verify_hex(&events_mac) {
        return Err(refuse("its grade events were changed outside lens-inspect (signature mismatch)".into()));
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
    let events = rows.collect::<Result<Vec<ForeignEvent>, _>>().map_err(damaged)?;
    if let Some(e) = events.iter().find(|e| e.inspector != inspector) {
        return Err(refuse(format!("it holds grades by {:?}, but it was made for {inspector:?}", e.inspector)));
    }
    Ok(events)
}

/// Merges a pack's grades into the project (idempotent). Refused packs change nothing.
pub fn merge_pack(project: &mut Project, pack_path: &Path) -> Result<MergeReport, PackError> {
    let secret = project.secret()?;
    let events = read_pack(pack_path, &project.project_id()?, &secret)?;
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
    log::info!("merged {}: {added} events added, {already_present} already present", pack_path.display());
    Ok(MergeReport { added, already_present, inspectors })
}
