//! Helpers shared by the integration tests: writing FITS files of every kind, good and broken.
#![allow(dead_code)]

use lens_inspect::cutout::{Band, Cutout};
use lens_inspect::survey::fits_write::{self, bologna_file_name, bologna_folder, Card, ImageHdu, PixelData};
use lens_inspect::survey::fixtures::synthetic_cutout;
use std::path::{Path, PathBuf};

pub const SIZE: usize = 21;

pub fn cutout(name: &str, seed: u64) -> Cutout {
    synthetic_cutout(name, SIZE, seed)
}

pub fn bologna_path(root: &Path, band: Band, id: &str) -> PathBuf {
    root.join(bologna_folder(band)).join(bologna_file_name(band, id))
}

/// Writes good objects `0..n` in the Bologna layout, returning them.
pub fn write_good_bologna(root: &Path, n: usize) -> Vec<Cutout> {
    (0..n)
        .map(|k| {
            let c = cutout(&format!("{k}"), k as u64);
            fits_write::write_bologna(root, &c).expect("write");
            c
        })
        .collect()
}

/// Cuts a file to `len` bytes.
pub fn truncate(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).expect("open");
    f.set_len(len).expect("truncate");
}

/// Rewrites the BITPIX card of a FITS file in place (to make an illegal one).
pub fn set_bitpix(path: &Path, value: i64) {
    set_card(path, "BITPIX", value);
}

/// Rewrites an integer card of a FITS file's first header in place (to make a header that lies).
pub fn set_card(path: &Path, key: &str, value: i64) {
    let mut bytes = std::fs::read(path).expect("read");
    let name = format!("{key:<8}");
    let pos = bytes.chunks(80).position(|c| c.starts_with(name.as_bytes())).expect("card") * 80;
    let card = format!("{name}= {value:>20}");
    bytes[pos..pos + card.len()].copy_from_slice(card.as_bytes());
    std::fs::write(path, bytes).expect("write");
}

/// A MEF with one extension per band in the given order, naming the band with `key`.
pub fn mef_bytes(c: &Cutout, order: [Band; 4], key: &str) -> Vec<u8> {
    let exts: Vec<ImageHdu> = order
        .iter()
        .map(|&b| {
            ImageHdu::f32_image(c.width, c.height, fits_write::band_with_nan(c, b))
                .with_key(key, Card::Str(b.letter().to_ascii_uppercase().to_string()))
        })
        .collect();
    fits_write::to_bytes(None, &exts)
}

/// A 3-D cube (4, H, W) in the primary HDU, bands u, g, r, i, no band keys.
pub fn cube_bytes(c: &Cutout) -> Vec<u8> {
    let data: Vec<f32> = Band::ALL.iter().flat_map(|&b| fits_write::band_with_nan(c, b)).collect();
    let hdu = ImageHdu { shape: vec![4, c.height, c.width], data: PixelData::F32(data), keys: vec![] };
    fits_write::to_bytes(Some(&hdu), &[])
}

pub fn assert_close(a: &[f32], b: &[f32], rel: f32) {
    assert_eq!(a.len(), b.len());
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        let tol = rel * x.abs().max(y.abs()).max(1e-30);
        assert!((x - y).abs() <= tol, "pixel {k}: {x} vs {y}");
    }
}

/// A project of `n` simulated candidates (every other one a lens) that two inspectors graded
/// honestly (lenses 5 and 3, the rest 0 and 1): every candidate has a label, so retraining runs.
pub fn graded_sim_project(path: &Path, n: u64, seed: u64) -> lens_inspect::project::Project {
    use lens_inspect::project::{NewCandidate, NewGrade, Project, Role, Score};
    use lens_inspect::sim::{SimConfig, Simulator};
    use lens_inspect::survey::{ObjectSource, ObjectSpec};
    let mut p = Project::create_or_open(path).expect("project");
    let sim = Simulator::new(SimConfig::default());
    let objects: Vec<_> = (0..n).map(|k| sim.simulate(&format!("s{k}"), seed, k, Some(k % 2 == 0))).collect();
    let items: Vec<NewCandidate> = objects
        .iter()
        .map(|o| {
            let spec = ObjectSpec::new(o.cutout.name.clone(), ObjectSource::File { path: "/x".into() });
            NewCandidate::from_cutout(spec, &o.cutout, true)
        })
        .collect();
    p.insert_candidates(&items).expect("insert");
    let (a, b) = (p.inspector("a", Role::Volunteer).expect("a"), p.inspector("b", Role::Volunteer).expect("b"));
    for (row, o) in p.candidates().expect("rows").iter().zip(&objects) {
        let (x, y) = if o.truth.is_lens { (Score::Sure, Score::Maybe) } else { (Score::No, Score::Interesting) };
        for (who, s) in [(a.id, x), (b.id, y)] {
            p.record_grade(&NewGrade { candidate_id: row.id, inspector_id: who, score: Some(s), ..Default::default() })
                .expect("grade");
        }
    }
    p
}

/// A folder of this test process that stands in for the user's data folder: the GUI's recent
/// projects list and any demo go there, never into `~/.local/share`.
pub fn isolated_home() -> &'static Path {
    let dir = std::env::temp_dir().join(format!("lens-inspect-test-home-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("test home");
    lens_inspect::demo::set_home(dir)
}
