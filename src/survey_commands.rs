//! The survey commands of the CLI (`cutouts`): argument handling and printing over the library's
//! `survey::extract`.

use anyhow::{Context, Result};
use lens_inspect::project::ingest::WCS_KEY;
use lens_inspect::project::{NewCandidate, Project};
use lens_inspect::survey::extract::{extract, ExtractOptions, ExtractReport};
use lens_inspect::survey::tiles::{CutOptions, EdgeMode, KIDS_PATTERN};
use lens_inspect::survey::{ObjectSource, ObjectSpec};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum EdgeArg {
    /// Mask what lies outside the tile; reject objects below --min-coverage.
    Partial,
    /// Skip objects whose cutout touches a tile edge.
    Strict,
}

/// Options of `cutouts`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).multiple(true).args(["out", "project"])))]
pub struct CutoutsArgs {
    /// Folder of survey tiles, one file per band (and weights/masks beside them), named by
    /// --pattern.
    #[arg(long)]
    pub tiles: PathBuf,
    /// Source catalogue: a FITS binary table or CSV (KiDS column names: ID/KIDS_ID,
    /// RAJ2000/ALPHA_J2000, DECJ2000/DELTA_J2000, KIDS_TILE/THELI_NAME, ...), or a folder of them.
    #[arg(long)]
    pub catalogue: PathBuf,
    /// Folder for the cutout cubes (4-plane FITS, u g r i, with WCS).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Add the cutouts to this project (created if missing); the cubes go to --out, or to a
    /// folder `<project>-cutouts` beside the project.
    #[arg(long)]
    pub project: Option<PathBuf>,
    /// Cutout side in pixels (odd).
    #[arg(long, default_value_t = 101)]
    pub size: usize,
    /// Which sources to cut, e.g. `MAG_AUTO < 21 && Z_B >= 0 && Z_B <= 0.8 && Flag < 4 &&
    /// IMAFLAGS_ISO == 0 && (MASK & 28668) == 0`; the report counts what each `&&` term removed.
    #[arg(long)]
    pub select: Option<String>,
    /// Objects near tile edges.
    #[arg(long, value_enum, default_value = "partial")]
    pub edge: EdgeArg,
    /// With --edge partial: least share of the cutout inside the tile (in the worst band).
    #[arg(long, default_value_t = 0.9)]
    pub min_coverage: f64,
    /// Cut a source whose cutout has no valid pixel in one band (a mask in one filter, e.g.
    /// KiDS's smaller u-band footprint), leaving that band NaN, instead of rejecting it as
    /// `all_masked`; the manifest's reason and the app say which band.
    #[arg(long)]
    pub keep_blank_bands: bool,
    /// Tile file names: {tile}, {band} (u, g, r, i) and optionally {kind} (sci, wei, msk); a
    /// trailing .fz or .gz is accepted. The default is KiDS DR4/DR5's.
    #[arg(long, default_value = KIDS_PATTERN)]
    pub pattern: String,
    /// Manifest: one row per selected object (id, RA/Dec, tile, pixel per band, coverage, masked
    /// count, selection columns, rejection reason). `.jsonl` for JSON lines, else CSV. Default:
    /// manifest.csv in the cutouts folder.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn cutouts(a: CutoutsArgs, progress: indicatif::ProgressBar) -> Result<ExitCode> {
    if a.size.is_multiple_of(2) {
        anyhow::bail!("--size {} must be odd, so the object sits on the centre pixel", a.size);
    }
    if !(0.0..=1.0).contains(&a.min_coverage) {
        anyhow::bail!("--min-coverage {} must lie between 0 and 1", a.min_coverage);
    }
    let out = match (&a.out, &a.project) {
        (Some(o), _) => o.clone(),
        (None, Some(p)) => {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("project");
            p.with_file_name(format!("{stem}-cutouts"))
        }
        (None, None) => unreachable!("clap requires --out or --project"),
    };
    // Absolute, so a project finds the cubes from any working folder.
    let out = std::path::absolute(&out).unwrap_or(out);
    let manifest = a.manifest.clone().unwrap_or_else(|| out.join("manifest.csv"));
    let options = ExtractOptions {
        tiles: a.tiles.clone(),
        catalogue: a.catalogue.clone(),
        pattern: a.pattern.clone(),
        select: a.select.clone(),
        cut: CutOptions {
            size: a.size,
            edge: match a.edge {
                EdgeArg::Partial => EdgeMode::Partial,
                EdgeArg::Strict => EdgeMode::Strict,
            },
            min_coverage: if matches!(a.edge, EdgeArg::Partial) { a.min_coverage } else { 0.0 },
            keep_blank_bands: a.keep_blank_bands,
        },
        out,
        manifest,
        measure_sky: a.project.is_some(),
    };
    // Open the project first: a locked or unwritable project should stop the job before hours of
    // cutting, not after.
    let mut project = a.project.as_ref().map(|p| Project::create_or_open(p)).transpose()?;
    progress.set_message("cutting");
    let report = extract(&options, &|done, total| {
        progress.set_length(total as u64);
        progress.set_position(done as u64);
    })?;
    progress.finish_and_clear();
    let mut added = None;
    if let Some(project) = project.as_mut() {
        added = Some(add_to_project(project, &report).context("adding the cutouts to the project")?);
    }
    print_report(&report, added, a.json)?;
    let partial = !report.rejected.is_empty() || !report.tile_problems.is_empty();
    Ok(if partial { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

fn add_to_project(project: &mut Project, report: &ExtractReport) -> Result<usize> {
    let mut added = 0;
    let ok: Vec<_> = report.rows.iter().filter(|r| r.status == "ok").collect();
    for chunk in ok.chunks(1024) {
        let batch: Vec<NewCandidate> = chunk
            .iter()
            .map(|r| {
                let path = r.file.clone().expect("cut rows have a file");
                let mut spec = ObjectSpec::new(r.id.clone(), ObjectSource::File { path });
                spec.ra_deg = Some(r.ra);
                spec.dec_deg = Some(r.dec);
                spec.tile = Some(r.tile.clone());
                spec.metadata = r
                    .columns
                    .iter()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                    .collect();
                if let Some(w) = &r.wcs {
                    spec.metadata.insert(WCS_KEY.into(), w.clone());
                }
                if let Some(c) = r.coverage {
                    spec.metadata.insert("coverage".into(), serde_json::json!(c));
                }
                if !r.blank_bands.is_empty() {
                    spec.metadata.insert(
                        lens_inspect::project::ingest::BLANK_BANDS_KEY.into(),
                        serde_json::json!(lens_inspect::cutout::band_list(&r.blank_bands)),
                    );
                }
                NewCandidate {
                    spec,
                    width: r.size,
                    height: r.size,
                    sky_sigma: r.sky_sigma,
                    pixels: None,
                    truth: None,
                    is_training: false,
                }
            })
            .collect();
        added += project.insert_candidates(&batch)?;
    }
    Ok(added)
}

fn print_report(r: &ExtractReport, added: Option<usize>, json: bool) -> Result<()> {
    if json {
        let mut v = serde_json::to_value(r)?;
        if let Some(n) = added {
            v["added_to_project"] = n.into();
        }
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    println!("catalogue: {} rows from {} file(s); selected {}", r.catalogue_rows, r.catalogue_files, r.selected);
    for c in &r.selection {
        println!("  {:<40} removed {:>8}, {} left", c.cut, c.removed, c.remaining);
    }
    println!("tiles: {} ({} unusable)", r.tiles, r.tile_problems.len());
    for p in &r.tile_problems {
        eprintln!("  {}: {}", p.tile, p.problem);
    }
    println!("cut {} cutouts into {}", r.written, r.out.display());
    for (why, n) in &r.rejected {
        println!("  rejected {n} ({why})");
    }
    if !r.outside_examples.is_empty() {
        println!(
            "  in no tile: {}{}",
            r.outside_examples.join(", "),
            if r.rejected.get("no_tile").copied().unwrap_or(0) > r.outside_examples.len() { ", ..." } else { "" }
        );
    }
    println!("manifest: {}", r.manifest.display());
    if let Some(n) = added {
        println!("added {n} candidates to the project (already present ones kept)");
    }
    Ok(())
}
