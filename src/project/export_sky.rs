//! Exports that other astronomy tools open: ds9 region files of the points inspectors marked, and
//! candidates as 4-plane FITS cubes with their WCS.

use super::export::ExportError;
use super::{CandidateRow, Project};
use crate::survey::fits_write::{cutout_cube, safe_file_stem, write_file, Card};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The coordinates regions are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionFrame {
    /// RA/Dec through the candidate's WCS (pixels for a candidate without one).
    Fk5,
    /// 1-based image pixels, as ds9 counts them.
    Image,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RegionsReport {
    /// Region files written (one per candidate with marked points).
    pub files: usize,
    pub points: usize,
    /// Candidates written in image pixels though fk5 was asked for: they have no WCS.
    pub without_wcs: Vec<String>,
}

/// Writes `DIR/<candidate>.reg` for every candidate with marked points in its current grades
/// (each inspector's latest): one ds9 `point` per mark, tagged with the inspector and grade.
pub fn write_regions(project: &Project, dir: &Path, frame: RegionFrame) -> Result<RegionsReport, ExportError> {
    regions(project, dir, frame, None)
}

fn regions(
    project: &Project,
    dir: &Path,
    frame: RegionFrame,
    only: Option<&str>,
) -> Result<RegionsReport, ExportError> {
    let fail = |e: std::io::Error| ExportError::Write { path: dir.into(), detail: e.to_string() };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let candidates: HashMap<i64, CandidateRow> = project.candidates()?.into_iter().map(|c| (c.id, c)).collect();
    let inspectors: HashMap<i64, String> = project.inspectors()?.into_iter().map(|i| (i.id, i.name)).collect();
    let events = project.grade_events()?;
    let mut by_candidate: BTreeMap<i64, Vec<&super::GradeEvent>> = BTreeMap::new();
    for e in crate::consensus::current_events(&events) {
        if e.score.is_some() && !e.points.is_empty() {
            by_candidate.entry(e.candidate_id).or_default().push(e);
        }
    }
    let mut report = RegionsReport::default();
    for (id, marks) in by_candidate {
        let Some(c) = candidates.get(&id).filter(|c| only.is_none_or(|n| n == c.name)) else { continue };
        let wcs = if frame == RegionFrame::Fk5 { c.wcs() } else { None };
        if frame == RegionFrame::Fk5 && wcs.is_none() {
            report.without_wcs.push(c.name.clone());
        }
        let mut text = String::from("# Region file format: DS9 version 4.1\n");
        text.push_str(&format!("# lens-inspect {}: points marked on {}\n", env!("CARGO_PKG_VERSION"), c.name));
        text.push_str("global color=green width=2\n");
        text.push_str(if wcs.is_some() { "fk5\n" } else { "image\n" });
        for e in marks {
            let who = inspectors.get(&e.inspector_id).map(String::as_str).unwrap_or("?");
            let grade = e.score.map(|s| s.value()).unwrap_or_default();
            for p in &e.points {
                // Marked points are 0-based pixel centres; FITS and ds9 count from 1.
                let (x, y) = (p.x as f64 + 1.0, p.y as f64 + 1.0);
                let at = match wcs.as_ref().and_then(|w| w.pixel_to_sky(x, y)) {
                    Some((ra, dec)) => format!("point({ra:.7},{dec:.7})"),
                    None => format!("point({x:.2},{y:.2})"),
                };
                text.push_str(&format!("{at} # point=circle text={{{who}: {grade}}}\n"));
                report.points += 1;
            }
        }
        let path = dir.join(format!("{}.reg", safe_file_stem(&c.name)));
        std::fs::write(&path, text).map_err(|e| ExportError::Write { path, detail: e.to_string() })?;
        report.files += 1;
    }
    Ok(report)
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CutoutsReport {
    pub written: usize,
    /// Candidates whose pixels could not be read, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Writes each named candidate as `DIR/<name>.fits`: a float32 cube (u, g, r, i), NaN where
/// masked, with its WCS when it has one.
pub fn write_cutouts(project: &Project, names: &[String], dir: &Path) -> Result<CutoutsReport, ExportError> {
    std::fs::create_dir_all(dir).map_err(|e| ExportError::Write { path: dir.into(), detail: e.to_string() })?;
    let mut report = CutoutsReport::default();
    for name in names {
        let c = project.candidate_by_name(name)?;
        let cutout = match project.load_cutout(&c) {
            Ok(cutout) => cutout,
            Err(e) => {
                report.failed.push((name.clone(), e.to_string()));
                continue;
            }
        };
        let mut cube = cutout_cube(&cutout, c.wcs().as_ref());
        if let (Some(ra), Some(dec)) = (c.ra_deg, c.dec_deg) {
            cube.keys.push(("RA_OBJ".into(), Card::Float(ra)));
            cube.keys.push(("DEC_OBJ".into(), Card::Float(dec)));
        }
        let path = dir.join(format!("{}.fits", safe_file_stem(&c.name)));
        write_file(&path, Some(&cube), &[]).map_err(|e| ExportError::Write { path, detail: e.to_string() })?;
        report.written += 1;
    }
    Ok(report)
}

/// Writes candidate `name` of the project at `project` as a cube with its WCS (and its marked
/// points as an fk5 region file) into a folder under the system's temporary folder, then starts
/// `ds9` on them. Returns what to tell the user, or why it failed, in words.
pub fn open_in_ds9(project: &Path, name: &str, ds9: &Path) -> Result<String, String> {
    let p = Project::open_read_only(project).map_err(|e| e.to_string())?;
    // One folder per user: on a shared machine another user's folder of the same name would
    // not be writable.
    #[cfg(unix)]
    // SAFETY: getuid has no preconditions and cannot fail.
    let folder = format!("lens-inspect-ds9-{}", unsafe { libc::getuid() });
    #[cfg(not(unix))]
    let folder = "lens-inspect-ds9".to_string();
    let dir = std::env::temp_dir().join(folder);
    let r = write_cutouts(&p, &[name.to_string()], &dir).map_err(|e| e.to_string())?;
    if let Some((_, why)) = r.failed.first() {
        return Err(format!("cannot show {name}: {why}"));
    }
    let cube = dir.join(format!("{}.fits", safe_file_stem(name)));
    let regions_dir = dir.join("regions");
    let _ = std::fs::remove_file(regions_dir.join(format!("{}.reg", safe_file_stem(name))));
    regions(&p, &regions_dir, RegionFrame::Fk5, Some(name)).map_err(|e| e.to_string())?;
    let region = regions_dir.join(format!("{}.reg", safe_file_stem(name)));
    let mut command = std::process::Command::new(ds9);
    command.arg(&cube).args(["-cube", "3", "-scale", "zscale", "-zoom", "to", "fit"]);
    if region.exists() {
        command.arg("-regions").arg(&region);
    }
    match spawn_patiently(&mut command) {
        Ok(mut child) => {
            // Reaped when the user closes ds9, so no zombie outlives it.
            std::thread::spawn(move || child.wait());
            Ok(format!("ds9 opened {} (plane 3 = r band)", cube.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "ds9 is not installed (no `{}` on the PATH; install SAOImageDS9, or set LENS_INSPECT_DS9 to its path). The cube is at {}",
            ds9.display(),
            cube.display()
        )),
        Err(e) => Err(format!("cannot start {}: {e}. The cube is at {}", ds9.display(), cube.display())),
    }
}

/// Starts `command`, trying again for up to a second while the program file is busy (ETXTBSY).
/// A script written a moment ago can be reported busy while any other thread of this process
/// forks, until that child execs; ds9 wrappers and the tests' stand-in are such scripts.
fn spawn_patiently(command: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    const ETXTBSY: i32 = 26;
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(e) if cfg!(unix) && e.raw_os_error() == Some(ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}
