//! A bridge to Zooniverse (Panoptes), the platform Space Warps runs on, for crowds larger than a
//! lab: candidates go out as a subject set (a PNG per candidate and a manifest), and the
//! project's classifications export comes back as grade events.
//!
//! Subject manifest: `image_name_1` (the PNG) and hidden columns (a leading `#` hides a column
//! from volunteers in the classify interface): `#name` (the candidate, which comes back in each
//! classification's `subject_data`), `#ra`, `#dec`, `#training_subject` (true/false) and, for
//! training subjects only, `#is_lens` (the truth Space Warps-style feedback needs).
//!
//! Classifications export (Panoptes' CSV): `classification_id`, `user_name`, `created_at`,
//! `annotations` (JSON: `[{"task": "T0", "value": "Yes"}, ...]`, the value an answer label or its
//! index), `subject_data` (JSON keyed by subject id, holding the manifest's columns). An answer
//! becomes a grade by the mapping given (`Yes=5,No=0`); the user name is the inspector and
//! `created_at` the time. The event's uid is `zooniverse-<classification_id>`, so importing the
//! same export again, or a later export that repeats it, adds nothing twice.

use super::import::{ForeignEvent, ImportError, ImportReport};
use super::{Project, Role, Score};
use std::collections::HashSet;
use std::path::Path;

/// Zooniverse answer (label or index) -> grade.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerMap {
    /// The question task to read (`T0`); `None`: the first annotation of each classification.
    pub task: Option<String>,
    pub answers: Vec<(String, Score)>,
}

impl AnswerMap {
    /// Parses `Yes=5,No=0` (labels compared without regard to case; `0=0,1=5` maps indices).
    pub fn parse(text: &str, task: Option<String>) -> Result<AnswerMap, String> {
        let mut answers = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (answer, grade) =
                part.rsplit_once('=').ok_or_else(|| format!("answer mapping {part:?}: expected ANSWER=GRADE"))?;
            let score = grade
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(Score::from_value)
                .ok_or_else(|| format!("answer mapping {part:?}: the grade must be 0, 1, 3 or 5"))?;
            answers.push((answer.trim().to_string(), score));
        }
        if answers.is_empty() {
            return Err("no answer mapping: give e.g. --answers 'Yes=5,No=0'".into());
        }
        Ok(AnswerMap { task, answers })
    }

    fn grade_of(&self, value: &serde_json::Value) -> Option<Score> {
        let text = match value {
            serde_json::Value::String(s) => s.trim().to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        self.answers.iter().find(|(a, _)| a.eq_ignore_ascii_case(&text)).map(|(_, s)| *s)
    }
}

/// The subject's candidate name from a classification's `subject_data`.
fn candidate_of(subject_data: &serde_json::Value) -> Option<String> {
    let subjects = subject_data.as_object()?;
    for subject in subjects.values() {
        for key in ["#name", "!name", "name", "#candidate", "candidate"] {
            if let Some(v) = subject.get(key).and_then(|v| v.as_str()) {
                return Some(v.to_string());
            }
        }
        // A manifest without our column: the image file's name without extension.
        for key in ["image_name_1", "#image_name_1", "Filename", "filename", "image"] {
            if let Some(v) = subject.get(key).and_then(|v| v.as_str()) {
                return Some(v.rsplit_once('.').map_or(v, |(stem, _)| stem).to_string());
            }
        }
    }
    None
}

/// `2024-05-01 12:34:56 UTC` (Panoptes' form) or ISO 8601 -> the stored form.
fn zooniverse_time(text: &str) -> Option<String> {
    let t = text.trim();
    super::import::parse_time(t.strip_suffix(" UTC").unwrap_or(t))
}

/// Imports a Panoptes classifications export. Rows whose subject names no candidate of the
/// project, or whose answer has no mapping, are listed and skipped.
pub fn import_classifications(
    project: &mut Project,
    path: &Path,
    answers: &AnswerMap,
) -> Result<ImportReport, ImportError> {
    let fail = |detail: String| ImportError::Read { path: path.into(), detail };
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(path).map_err(|e| fail(e.to_string()))?;
    let headers: Vec<String> = reader.headers().map_err(|e| fail(e.to_string()))?.iter().map(str::to_string).collect();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| fail(format!("no `{name}` column: not a Panoptes classifications export")))
    };
    let (id_col, user_col, time_col) = (col("classification_id")?, col("user_name")?, col("created_at")?);
    let (ann_col, subj_col) = (col("annotations")?, col("subject_data")?);
    let known: HashSet<String> = project.candidate_names()?.into_iter().collect();
    let mut report = ImportReport::default();
    let mut events = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut line = 1usize;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                line += 1;
                report.skipped.push((format!("line {line}"), e.to_string()));
                continue;
            }
        }
        line += 1;
        let get = |c: usize| record.get(c).unwrap_or("").trim();
        let here = || format!("line {line}");
        let id = get(id_col);
        if id.is_empty() {
            report.skipped.push((here(), "empty classification_id".into()));
            continue;
        }
        let subject: serde_json::Value = match serde_json::from_str(get(subj_col)) {
            Ok(v) => v,
            Err(e) => {
                report.skipped.push((here(), format!("subject_data is not JSON: {e}")));
                continue;
            }
        };
        let Some(candidate) = candidate_of(&subject) else {
            report.skipped.push((here(), "subject_data names no candidate (no #name column in the manifest?)".into()));
            continue;
        };
        if !known.contains(&candidate) {
            report.skipped.push((here(), format!("unknown candidate {candidate:?}")));
            continue;
        }
        let annotations: serde_json::Value = match serde_json::from_str(get(ann_col)) {
            Ok(v) => v,
            Err(e) => {
                report.skipped.push((here(), format!("annotations are not JSON: {e}")));
                continue;
            }
        };
        let list = annotations.as_array().cloned().unwrap_or_default();
        let annotation = match &answers.task {
            Some(t) => list.iter().find(|a| a.get("task").and_then(|v| v.as_str()) == Some(t.as_str())),
            None => list.first(),
        };
        let Some(value) = annotation.and_then(|a| a.get("value")) else {
            report.skipped.push((here(), "no answer to the task".into()));
            continue;
        };
        let Some(score) = answers.grade_of(value) else {
            report.skipped.push((here(), format!("answer {value} has no grade mapping")));
            continue;
        };
        let Some(time) = zooniverse_time(get(time_col)) else {
            report.skipped.push((here(), format!("created_at {:?} is not a time", get(time_col))));
            continue;
        };
        let user = get(user_col);
        let inspector = if user.is_empty() { "not-logged-in".to_string() } else { user.to_string() };
        events.push(ForeignEvent {
            uid: format!("zooniverse-{id}"),
            candidate,
            inspector,
            score: Some(score),
            time,
            session_id: None,
            comment: None,
            points: None,
        });
    }
    let (added, present) = project.insert_foreign_events(&events, Role::Volunteer)?;
    report.added = added;
    report.already_present = present;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_mappings_parse_and_refuse_nonsense() {
        let m = AnswerMap::parse("Yes=5, No=0", None).unwrap();
        assert_eq!(m.grade_of(&serde_json::json!("yes")), Some(Score::Sure));
        assert_eq!(m.grade_of(&serde_json::json!("No")), Some(Score::No));
        assert_eq!(m.grade_of(&serde_json::json!("Maybe")), None);
        let idx = AnswerMap::parse("0=0,1=3", None).unwrap();
        assert_eq!(idx.grade_of(&serde_json::json!(1)), Some(Score::Maybe));
        assert!(AnswerMap::parse("Yes=4", None).is_err());
        assert!(AnswerMap::parse("Yes", None).is_err());
        assert!(AnswerMap::parse("", None).is_err());
    }

    #[test]
    fn panoptes_times_and_subject_names_are_read() {
        assert_eq!(zooniverse_time("2024-05-01 12:34:56 UTC").as_deref(), Some("2024-05-01T12:34:56.000Z"));
        let s = serde_json::json!({"91234": {"retired": null, "#name": "KiDS J0844", "#ra": 131.0}});
        assert_eq!(candidate_of(&s).as_deref(), Some("KiDS J0844"));
        let s = serde_json::json!({"1": {"image_name_1": "100042.png"}});
        assert_eq!(candidate_of(&s).as_deref(), Some("100042"));
    }
}

/// What writing a subject set did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SubjectSetReport {
    pub subjects: usize,
    pub training: usize,
    /// Candidates whose picture could not be made, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Writes a Zooniverse subject set into `dir`: `<name>.png` (the Lupton composite, north up, as
/// the grade view shows it) per candidate, and `manifest.csv` for the Panoptes uploader or CLI.
/// Training candidates (known truth) are flagged, with their truth hidden from volunteers.
pub fn write_subject_set(
    project: &Project,
    names: &[String],
    dir: &Path,
    settings: &crate::render::DisplaySettings,
) -> Result<SubjectSetReport, ImportError> {
    use rayon::prelude::*;
    let fail = |detail: String| ImportError::Read { path: dir.into(), detail };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let scale = project.flux_scale().map_err(ImportError::Project)?;
    let path = project.path().to_path_buf();
    let safe = crate::survey::fits_write::safe_file_stem;
    // Pictures in parallel, each worker with its own read-only connection.
    let rows: Vec<(String, Result<super::CandidateRow, String>)> = names
        .par_iter()
        .map_init(
            || Project::open_read_only(&path).ok(),
            |reader, name| {
                let Some(p) = reader else { return (name.clone(), Err("cannot open the project".to_string())) };
                let made = p.candidate_by_name(name).map_err(|e| e.to_string()).and_then(|c| {
                    let cutout = p.load_cutout(&c).map_err(|e| e.to_string())?;
                    let image = crate::render::composite(&cutout, settings, scale);
                    crate::render::save_png(&dir.join(format!("{}.png", safe(name))), &image)
                        .map_err(|e| e.to_string())?;
                    Ok(c)
                });
                (name.clone(), made)
            },
        )
        .collect();
    let mut report = SubjectSetReport::default();
    let manifest = dir.join("manifest.csv");
    let mut w = csv::Writer::from_path(&manifest).map_err(|e| fail(e.to_string()))?;
    w.write_record(["image_name_1", "#name", "#ra", "#dec", "#training_subject", "#is_lens"])
        .map_err(|e| fail(e.to_string()))?;
    for (name, made) in rows {
        match made {
            Ok(c) => {
                let opt = |v: Option<f64>| v.map(|x| format!("{x:.7}")).unwrap_or_default();
                let truth = if c.is_training {
                    c.truth_is_lens.map(|t| t.to_string()).unwrap_or_default()
                } else {
                    String::new()
                };
                w.write_record([
                    format!("{}.png", safe(&name)),
                    name.clone(),
                    opt(c.ra_deg),
                    opt(c.dec_deg),
                    c.is_training.to_string(),
                    truth,
                ])
                .map_err(|e| fail(e.to_string()))?;
                report.subjects += 1;
                report.training += c.is_training as usize;
            }
            Err(why) => report.failed.push((name, why)),
        }
    }
    w.flush().map_err(|e| fail(e.to_string()))?;
    Ok(report)
}
