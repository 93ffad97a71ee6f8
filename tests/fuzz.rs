//! Fuzzed inputs never panic or abort: FITS headers and data, grade CSVs, model files and session
//! packs. Each property runs 64 cases in CI; a long run is
//! `PROPTEST_CASES=20000 cargo test --release --test fuzz` (see docs/faults.md).

mod common;

use lens_inspect::project::pack::{export_pack, merge_pack, PackOptions};
use lens_inspect::project::{NewCandidate, NewGrade, Project, Role, Score};
use lens_inspect::survey::fits::read_planes;
use lens_inspect::survey::fits_write::{self, ImageHdu};
use lens_inspect::survey::{ObjectSource, ObjectSpec};
use proptest::prelude::*;
use std::path::Path;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// A valid 4-band FITS cube's bytes, to mutate.
fn good_fits() -> Vec<u8> {
    let c = common::cutout("f", 1);
    let hdus: Vec<ImageHdu> = lens_inspect::cutout::Band::ALL
        .iter()
        .map(|&b| ImageHdu::f32_image(c.width, c.height, c.band(b).to_vec()))
        .collect();
    fits_write::to_bytes(Some(&hdus[0]), &hdus[1..])
}

/// Header cards a fuzzer should try values in: sizes, types, scales, blanks.
const KEYS: [&str; 9] = ["BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "BSCALE", "BZERO", "BLANK", "GCOUNT"];

fn set_card_bytes(bytes: &mut [u8], header: usize, key: &str, value: &str) {
    let card = format!("{key:<8}= {value:>20}");
    let mut full = [b' '; 80];
    full[..card.len().min(80)].copy_from_slice(&card.as_bytes()[..card.len().min(80)]);
    // Replace the card if it is there, else the first blank card of that header block.
    let start = header * 2880;
    let cards = bytes[start..(start + 2880).min(bytes.len())].chunks(80).count();
    let slot = (0..cards)
        .find(|k| bytes[start + k * 80..].starts_with(format!("{key:<8}").as_bytes()))
        .or_else(|| (0..cards).find(|k| bytes[start + k * 80..start + k * 80 + 8].iter().all(|&b| b == b' ')));
    if let Some(k) = slot {
        bytes[start + k * 80..start + k * 80 + 80].copy_from_slice(&full);
    }
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        (-3i64..200_000).prop_map(|v| v.to_string()),
        Just("-64".to_string()),
        Just("1E300".to_string()),
        Just("NaN".to_string()),
        Just("'text'".to_string()),
        Just("T".to_string()),
        "[ -~]{0,20}",
    ]
}

fn write_tmp(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

proptest! {
    #![proptest_config(config())]

    /// Header cards with any value, the file cut anywhere and bytes flipped: a reason, never a
    /// panic, an abort or a huge allocation.
    #[test]
    fn fits_with_lying_headers_is_refused_or_read(
        edits in proptest::collection::vec((0usize..4, 0usize..KEYS.len(), value()), 0..4),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut bytes = good_fits();
        // The four headers sit at these blocks: primary at 0, then after each block of data.
        let data_blocks = (common::SIZE * common::SIZE * 4).div_ceil(2880);
        for (hdu, key, v) in &edits {
            set_card_bytes(&mut bytes, hdu * (1 + data_blocks), KEYS[*key], v);
        }
        let len = bytes.len();
        for (at, b) in &flips {
            bytes[at.index(len)] = *b;
        }
        if let Some(at) = cut {
            bytes.truncate(at.index(len));
        }
        let path = write_tmp(dir.path(), "x.fits", &bytes);
        let _ = read_planes(&path);
    }

    /// Any text as a grade file: bad rows are listed, the rest imported, nothing panics, and
    /// importing again adds nothing.
    #[test]
    fn grade_csv_of_any_text_is_imported_or_refused(text in "(candidate|inspector|score|time|uid|points|label|,|c0|c1|ann|[0-9]|\\n|\"|-|:|T|Z| |\\[|\\]|\\{|\\}|x|y){0,200}") {
        let dir = tempfile::tempdir().expect("tmp");
        let mut p = project(dir.path());
        let path = write_tmp(dir.path(), "g.csv", text.as_bytes());
        if let Ok(first) = lens_inspect::project::import::import_grades(&mut p, &path, Some("ann")) {
            let again = lens_inspect::project::import::import_grades(&mut p, &path, Some("ann")).expect("again");
            prop_assert_eq!(again.added, 0);
            prop_assert_eq!(again.already_present, first.added + first.already_present);
        }
    }

    /// Any bytes as a model file: refused with a reason.
    #[test]
    fn model_files_of_any_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..4096), keep_magic in any::<bool>()) {
        let mut b = bytes;
        if keep_magic {
            let good = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/models/lens-detector.lensmodel")).expect("shipped model");
            let head = good.len().min(64 + b.len() % 4096);
            b.splice(0..0, good[..head].iter().copied());
        }
        let device = burn::tensor::Device::flex();
        prop_assert!(lens_inspect::model::checkpoint::from_bytes(Path::new("fuzz.lensmodel"), &b, &device).is_err());
    }

    /// A pack with bytes flipped or cut: refused (or, where the flip missed everything signed,
    /// merged), never a panic, and the project stays sound.
    #[test]
    fn packs_with_flipped_bytes_never_harm_the_project(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut p = project(dir.path());
        let names: Vec<String> = p.candidates().expect("rows").into_iter().map(|c| c.name).collect();
        let pack = dir.path().join("a.pack");
        export_pack(&mut p, &pack, &PackOptions { inspector: "ann".into(), names, ..Default::default() }).expect("pack");
        {
            let mut q = Project::open_existing(&pack).expect("pack");
            let ann = q.inspector("ann", Role::Volunteer).expect("ann");
            let c = q.candidates().expect("rows")[0].id;
            q.record_grade(&NewGrade { candidate_id: c, inspector_id: ann.id, score: Some(Score::Sure), ..Default::default() }).expect("grade");
        }
        let mut bytes = std::fs::read(&pack).expect("read");
        let len = bytes.len();
        for (at, b) in &flips {
            bytes[at.index(len)] = *b;
        }
        if let Some(at) = cut {
            bytes.truncate(at.index(len));
        }
        let forged = write_tmp(dir.path(), "b.pack", &bytes);
        let before = p.grade_events().expect("events").len();
        match merge_pack(&mut p, &forged) {
            Ok(r) => prop_assert!(r.added <= 1),
            Err(_) => prop_assert_eq!(p.grade_events().expect("events").len(), before),
        }
        prop_assert_eq!(p.integrity_check().expect("check"), "ok");
    }
}

fn project(dir: &Path) -> Project {
    let mut p = Project::create_or_open(&dir.join("p.lensproj")).expect("project");
    let items: Vec<NewCandidate> = (0..2)
        .map(|k| {
            let c = common::cutout(&format!("c{k}"), k);
            NewCandidate::from_cutout(
                ObjectSpec::new(c.name.clone(), ObjectSource::File { path: "/x".into() }),
                &c,
                true,
            )
        })
        .collect();
    p.insert_candidates(&items).expect("insert");
    p
}
