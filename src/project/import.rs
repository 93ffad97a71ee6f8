//! Grades from files: spreadsheets (`candidate,inspector,score,time[,comment]`), labelling
//! scripts (`ID,LABEL` with the inspector named on the command line), and the program's own
//! event log (`export --grades`: uids, undo rows, sessions and points come back exactly). Bad rows
//! are listed and skipped; the rest are imported. Importing a file again adds nothing: a row keeps
//! its uid when it has one, and otherwise gets one from its content (candidate, inspector, score
//! and time; without a time, the row number and the file's content hash instead), never from
//! anything that changes when the file is copied or touched.

use super::{Project, ProjectError, Role, Score};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One grade event from outside, with its own unique id (for idempotent imports and merges).
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignEvent {
    pub uid: String,
    pub candidate: String,
    pub inspector: String,
    pub score: Option<Score>,
    pub time: String,
    pub session_id: Option<String>,
    pub comment: Option<String>,
    pub points: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportReport {
    pub added: usize,
    pub already_present: usize,
    /// (line or event, reason)
    pub skipped: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error("cannot read {path}: {detail}")]
    Read { path: PathBuf, detail: String },
}

/// FNV-1a 64 of a string, hex: content-derived ids.
pub fn content_id(text: &str) -> String {
    format!("{:016x}", crate::hash::fnv1a64(text.as_bytes()))
}

/// Parses an ISO 8601 time (with offset or `Z`, or without: taken as UTC; a bare date is
/// midnight) into the stored form.
pub fn parse_time(text: &str) -> Option<String> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    let t = text.trim();
    let utc: DateTime<Utc> = if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        d.with_timezone(&Utc)
    } else if let Some(n) = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    {
        n.and_utc()
    } else {
        NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0)?.and_utc()
    };
    Some(utc.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// Imports a grades CSV. Columns are found by name (case-insensitive): the candidate in
/// `candidate`, `id` or `name`; `inspector` (or `default_inspector`); the grade in `score`
/// (0, 1, 3, 5) or `label` (a labelling script's 0 / 1, read as 0 = not a lens, 1 = surely a lens:
/// 5); optional `time` (ISO 8601; without it the file's modification time) and `comment`.
pub fn import_grades(
    project: &mut Project,
    path: &Path,
    default_inspector: Option<&str>,
) -> Result<ImportReport, ImportError> {
    let fail = |detail: String| ImportError::Read { path: path.into(), detail };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_path(path)
        .map_err(|e| fail(e.to_string()))?;
    let headers: Vec<String> =
        reader.headers().map_err(|e| fail(e.to_string()))?.iter().map(|h| h.to_ascii_lowercase()).collect();
    let find = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
    let cand_col =
        find(&["candidate", "id", "name"]).ok_or_else(|| fail("no candidate column (candidate, id or name)".into()))?;
    let insp_col = find(&["inspector"]);
    if insp_col.is_none() && default_inspector.is_none() {
        return Err(fail("no inspector column: name the inspector with --inspector".into()));
    }
    let score_col = find(&["score", "grade"]);
    let label_col = find(&["label"]);
    if score_col.is_none() && label_col.is_none() {
        return Err(fail("no score (or label) column".into()));
    }
    let time_col = find(&["time"]);
    let comment_col = find(&["comment"]);
    // The program's own event log carries these; other files may too.
    let uid_col = find(&["uid"]);
    let session_col = find(&["session", "session_id"]);
    let points_col = find(&["points"]);
    let file_hash =
        std::fs::read(path).map(|b| format!("{:016x}", crate::hash::fnv1a64(&b))).map_err(|e| fail(e.to_string()))?;
    let file_time = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|_| super::now_iso());
    let known = project.candidate_names()?;
    let mut report = ImportReport::default();
    let mut events = Vec::new();
    for (k, rec) in reader.records().enumerate() {
        let line = format!("line {}", k + 2);
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                report.skipped.push((line, e.to_string()));
                continue;
            }
        };
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).map(str::trim).filter(|s| !s.is_empty());
        let Some(candidate) = get(Some(cand_col)) else {
            report.skipped.push((line, "empty candidate".into()));
            continue;
        };
        if !known.contains(candidate) {
            report.skipped.push((line, format!("unknown candidate {candidate:?}")));
            continue;
        }
        let Some(inspector) = get(insp_col).or(default_inspector) else {
            report.skipped.push((line, "empty inspector".into()));
            continue;
        };
        let uid = get(uid_col);
        let score = match (get(score_col), get(label_col)) {
            (Some(s), _) => s.parse::<i64>().ok().and_then(Score::from_value).map(Some),
            (None, Some(l)) => match l {
                "0" => Some(Some(Score::No)),
                "1" => Some(Some(Score::Sure)),
                _ => None,
            },
            // An empty grade in the event log is an undo (a retraction).
            (None, None) if uid.is_some() => Some(None),
            _ => None,
        };
        let Some(score) = score else {
            let raw = get(score_col).or(get(label_col)).unwrap_or("");
            report.skipped.push((line, format!("grade {raw:?} is not one of 0, 1, 3, 5 (or a label 0/1)")));
            continue;
        };
        let points = match get(points_col) {
            Some(p) => match serde_json::from_str::<Vec<super::MarkedPoint>>(p) {
                Ok(_) => Some(p.to_string()),
                Err(e) => {
                    report.skipped.push((line, format!("points {p:?} are not a JSON list of {{x, y}}: {e}")));
                    continue;
                }
            },
            None => None,
        };
        let given_time = match get(time_col) {
            Some(t) => match parse_time(t) {
                Some(t) => Some(t),
                None => {
                    report.skipped.push((line, format!("time {t:?} is not ISO 8601")));
                    continue;
                }
            },
            None => None,
        };
        let grade = score.map_or(String::new(), |s| s.value().to_string());
        let uid = match (uid, &given_time) {
            (Some(u), _) => u.to_string(),
            (None, Some(t)) => {
                format!("import-{}", content_id(&format!("{candidate}\u{1f}{inspector}\u{1f}{grade}\u{1f}{t}")))
            }
            (None, None) => format!(
                "import-{}",
                content_id(&format!("{candidate}\u{1f}{inspector}\u{1f}{grade}\u{1f}{line}\u{1f}{file_hash}"))
            ),
        };
        events.push(ForeignEvent {
            uid,
            candidate: candidate.into(),
            inspector: inspector.into(),
            score,
            time: given_time.unwrap_or_else(|| file_time.clone()),
            session_id: get(session_col).map(str::to_string),
            comment: get(comment_col).map(str::to_string),
            points,
        });
    }
    let (added, present) = project.insert_foreign_events(&events, Role::Volunteer)?;
    report.added = added;
    report.already_present = present;
    Ok(report)
}

/// Ids by name.
pub(crate) type IdsByName = HashMap<String, i64>;

/// Candidate and inspector ids by name, creating inspectors as needed.
pub(crate) fn lookups(
    project: &mut Project,
    events: &[ForeignEvent],
    role: Role,
) -> Result<(IdsByName, IdsByName), ProjectError> {
    let candidates: HashMap<String, i64> = project.candidates()?.into_iter().map(|c| (c.name, c.id)).collect();
    let inspectors = project.inspectors_by_names(events.iter().map(|e| e.inspector.as_str()), role)?;
    Ok((candidates, inspectors))
}
