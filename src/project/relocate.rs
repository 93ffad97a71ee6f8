//! Data that moved: candidates' file paths rewritten from an old folder to a new one.
//!
//! Paths are stored absolute at ingest (so a project opens from any working folder); when the
//! data moves (a new disk, another machine, a colleague's copy), `project relocate` or the app's
//! "Find the files" rewrites every path under the old folder, in one transaction.

use super::{Project, ProjectError};
use crate::survey::ObjectSource;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RelocateReport {
    /// Candidates with at least one path under the old folder (now rewritten).
    pub changed: usize,
    /// Of those, how many have all their files at the new place.
    pub found: usize,
    /// Candidates with files and paths elsewhere, left alone.
    pub untouched: usize,
}

/// `path` with its `from` prefix replaced by `to`, if it lies under `from` (whole components).
fn moved(path: &Path, from: &Path, to: &Path) -> Option<PathBuf> {
    path.strip_prefix(from).ok().map(|rest| to.join(rest))
}

impl Project {
    /// Rewrites every candidate file path under `from` to lie under `to` instead. Both are made
    /// absolute first. With `dry_run` nothing is written, and the report says what would change.
    pub fn relocate(&mut self, from: &Path, to: &Path, dry_run: bool) -> Result<RelocateReport, ProjectError> {
        let from = std::path::absolute(from).unwrap_or_else(|_| from.to_path_buf());
        let to = std::path::absolute(to).unwrap_or_else(|_| to.to_path_buf());
        let mut report = RelocateReport::default();
        let mut updates = Vec::new();
        for c in self.candidates()? {
            let Some(source) = &c.source else { continue };
            let (new, all_exist) = match source {
                ObjectSource::File { path } => match moved(path, &from, &to) {
                    Some(p) => {
                        let exists = p.exists();
                        (Some(ObjectSource::File { path: p }), exists)
                    }
                    None => (None, false),
                },
                ObjectSource::Bands { files } => {
                    let new_files: [Option<PathBuf>; 4] = std::array::from_fn(|b| {
                        files[b].as_ref().map(|p| moved(p, &from, &to).unwrap_or_else(|| p.clone()))
                    });
                    if new_files == *files {
                        (None, false)
                    } else {
                        let exists = new_files.iter().flatten().all(|p| p.exists());
                        (Some(ObjectSource::Bands { files: new_files }), exists)
                    }
                }
            };
            match new {
                Some(s) => {
                    report.changed += 1;
                    report.found += all_exist as usize;
                    updates.push((c.id, serde_json::to_string(&s).unwrap_or_default()));
                }
                None => report.untouched += 1,
            }
        }
        if !dry_run && !updates.is_empty() {
            self.set_sources(&updates)?;
        }
        Ok(report)
    }
}
