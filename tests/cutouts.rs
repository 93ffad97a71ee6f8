//! `cutouts`: from survey tiles and a FITS catalogue to cutout cubes with WCS, on synthetic tiles
//! the tests write themselves (band files of different sizes and CRPIX, CRVAL off the nominal
//! centre, a zero-weight stripe, known mask bits, a catalogue with string ids).

use lens_inspect::cutout::Band;
use lens_inspect::survey::extract::{extract, ExtractError, ExtractOptions, ExtractReport, ManifestRow};
use lens_inspect::survey::tile_fixtures::{
    band_wcs, write_catalogue, write_tile, Source, SourceColumns, TileSpec, MASK_BLOCK_BIT4,
};
use lens_inspect::survey::tiles::{CutOptions, EdgeMode, KIDS_PATTERN};
use lens_inspect::survey::wcs::{TanWcs, WcsKeys};
use std::path::{Path, PathBuf};

const SCALE: f64 = 0.2 / 3600.0;

fn kids_tile() -> TileSpec {
    TileSpec {
        name: "KiDS_DR4.0_131.0_2.5".into(),
        // Off the name's nominal centre on purpose.
        crval: (131.0123, 2.4871),
        width: 2000,
        height: 2200,
        scale: SCALE,
        zero_weight_columns: 1200..1205,
        with_weights_and_masks: true,
    }
}

/// A source at a FITS pixel of the tile's r band.
fn source_at(spec: &TileSpec, id: &str, x: f64, y: f64) -> Source {
    let (ra, dec) = band_wcs(spec, Band::R).pixel_to_sky(x, y).unwrap();
    Source { id: id.into(), ra, dec, peak: 500.0 }
}

fn columns(mag: f32, mask: i32, tile: &str) -> SourceColumns {
    SourceColumns { mag_auto: mag, z_b: 0.4, flag: 0, imaflags_iso: 0, mask, tile: tile.into() }
}

fn options(tiles: &Path, catalogue: &Path, out: &Path, select: Option<&str>, edge: EdgeMode) -> ExtractOptions {
    ExtractOptions {
        tiles: tiles.into(),
        catalogue: catalogue.into(),
        pattern: KIDS_PATTERN.into(),
        select: select.map(str::to_string),
        cut: CutOptions {
            size: 101,
            edge,
            min_coverage: if edge == EdgeMode::Partial { 0.5 } else { 0.0 },
            keep_blank_bands: false,
        },
        out: out.into(),
        manifest: out.join("manifest.csv"),
        measure_sky: true,
    }
}

fn row<'a>(report: &'a ExtractReport, id: &str) -> &'a ManifestRow {
    report.rows.iter().find(|r| r.id == id).unwrap_or_else(|| panic!("no manifest row for {id}"))
}

/// The cube's planes (u, g, r, i), its WCS and its MASK extension.
fn read_cube(path: &Path) -> (Vec<Vec<f32>>, TanWcs, Option<Vec<i32>>) {
    let mut f = fitsio::FitsFile::open(path).unwrap();
    let hdu = f.primary_hdu().unwrap();
    let data: Vec<f32> = hdu.read_image(&mut f).unwrap();
    let number = |f: &mut fitsio::FitsFile, k: &str| hdu.read_key::<f64>(f, k).ok();
    let mut values = std::collections::BTreeMap::new();
    for k in ["NAXIS1", "NAXIS2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1", "CD2_2"] {
        if let Some(v) = number(&mut f, k) {
            values.insert(k, v);
        }
    }
    let mut texts = std::collections::BTreeMap::new();
    for k in ["CTYPE1", "CTYPE2"] {
        texts.insert(k, hdu.read_key::<String>(&mut f, k).unwrap());
    }
    let wcs = TanWcs::new(&WcsKeys::from_lookup(|k| values.get(k).copied(), |k| texts.get(k).cloned())).unwrap();
    let mask = f.hdu("MASK").ok().map(|m| m.read_image(&mut f).unwrap());
    (data.chunks(101 * 101).map(<[f32]>::to_vec).collect(), wcs, mask)
}

fn argmax(plane: &[f32]) -> (usize, usize) {
    let k = plane
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(k, _)| k)
        .unwrap();
    (k % 101, k / 101)
}

/// Columns of a plane that are entirely NaN.
fn masked_columns(plane: &[f32]) -> Vec<usize> {
    (0..101).filter(|&x| (0..101).all(|y| plane[y * 101 + x].is_nan())).collect()
}

struct Setup {
    _dir: tempfile::TempDir,
    tiles: PathBuf,
    catalogue: PathBuf,
    out: PathBuf,
    spec: TileSpec,
}

fn kids_setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let tiles = dir.path().join("tiles");
    std::fs::create_dir_all(&tiles).unwrap();
    let spec = kids_tile();
    let t = spec.name.as_str();
    let sources = vec![
        source_at(&spec, "KiDS J0844 centre", 400.3, 500.7),
        source_at(&spec, "KiDS J0844 far", 1700.6, 1900.1),
        // Near the zero-weight stripe (0-based columns 1200..1205).
        source_at(&spec, "stripe", 1190.0, 900.0),
        // Inside the bit-4 mask block (0-based x 100..160, y 200..260).
        source_at(&spec, "masked-bits", 131.0, 231.0),
        // 20 pixels from the left edge: about 30 columns of its cutout fall outside.
        source_at(&spec, "edge", 20.0, 1100.0),
        // Too faint for the selection.
        source_at(&spec, "faint", 900.0, 300.0),
        // Flagged by a MASK bit the selection rejects.
        source_at(&spec, "flagged", 900.0, 1300.0),
        // Far from every tile.
        Source { id: "nowhere".into(), ra: 200.0, dec: -10.0, peak: 500.0 },
    ];
    let cols = vec![
        columns(19.0, 0, "KIDS_131.0_2.5"),
        columns(20.0, 1, "KIDS_131.0_2.5"),
        columns(20.0, 0, "KIDS_131.0_2.5"),
        columns(20.0, 0, "KIDS_131.0_2.5"),
        columns(20.0, 0, "KIDS_131.0_2.5"),
        columns(22.5, 0, t),
        columns(20.0, 4, t),
        columns(20.0, 0, ""),
    ];
    write_tile(&tiles, &spec, &sources).unwrap();
    let catalogue = dir.path().join("KiDS_DR4.0_131.0_2.5_ugriZYJHKs_cat.fits");
    write_catalogue(&catalogue, &sources, &cols).unwrap();
    let out = dir.path().join("cutouts");
    Setup { tiles, catalogue, out, spec, _dir: dir }
}

#[test]
fn cutouts_land_on_their_sources_with_a_wcs_that_round_trips() {
    let s = kids_setup();
    let select = "MAG_AUTO < 21 && (MASK & 28668) == 0";
    let report =
        extract(&options(&s.tiles, &s.catalogue, &s.out, Some(select), EdgeMode::Partial), &|_, _| {}).unwrap();
    assert_eq!(report.catalogue_rows, 8);
    // The cut flow: MAG_AUTO removes "faint", the MASK bits remove "flagged" (bit 2 is in
    // 28668, bit 0 is not, so "far" with MASK = 1 stays).
    assert_eq!(report.selection.iter().map(|c| c.removed).collect::<Vec<_>>(), vec![1, 1]);
    assert_eq!(report.selected, 6);
    assert_eq!(report.tiles, 1);
    assert!(report.tile_problems.is_empty());
    assert_eq!(report.written, 5, "{:?}", report.rejected);
    assert_eq!(report.rejected.get("no_tile"), Some(&1));
    assert_eq!(report.outside_examples, vec!["nowhere".to_string()]);
    assert!(report.rows.iter().all(|r| r.id != "faint" && r.id != "flagged"));

    for id in ["KiDS J0844 centre", "KiDS J0844 far"] {
        let r = row(&report, id);
        assert_eq!(r.status, "ok");
        assert_eq!(r.tile, s.spec.name);
        assert!(r.file.as_ref().unwrap().file_name().unwrap().to_str().unwrap().starts_with("KiDS_J0844"));
        let (planes, wcs, mask) = read_cube(r.file.as_ref().unwrap());
        assert!(mask.is_some(), "the tile has masks, so the cube carries them");
        // The source's peak sits on the centre pixel in every band, though the band files differ
        // in size and CRPIX.
        for (k, plane) in planes.iter().enumerate() {
            assert_eq!(argmax(plane), (50, 50), "{id}, band {}", Band::ALL[k]);
        }
        // The cube's WCS puts the source within half a pixel of the centre pixel (51, 51), and
        // pixel -> sky -> pixel round-trips.
        let (x, y) = wcs.sky_to_pixel(r.ra, r.dec).unwrap();
        assert!((x - 51.0).abs() <= 0.5 && (y - 51.0).abs() <= 0.5, "({x}, {y})");
        let tile_wcs = band_wcs(&s.spec, Band::R);
        let (tx, ty) = tile_wcs.sky_to_pixel(r.ra, r.dec).unwrap();
        assert!((x - (tx - (tx.round() - 51.0))).abs() < 1e-6 && (y - (ty - (ty.round() - 51.0))).abs() < 1e-6);
        for (px, py) in [(1.0, 1.0), (51.0, 51.0), (101.0, 37.5)] {
            let (ra, dec) = wcs.pixel_to_sky(px, py).unwrap();
            let (bx, by) = wcs.sky_to_pixel(ra, dec).unwrap();
            assert!((bx - px).abs() < 1e-6 && (by - py).abs() < 1e-6);
        }
        // Manifest pixel positions per band are each band's own.
        for b in Band::ALL {
            let (bx, by) = band_wcs(&s.spec, b).sky_to_pixel(r.ra, r.dec).unwrap();
            assert!((r.x[b.index()].unwrap() - bx).abs() < 1e-9 && (r.y[b.index()].unwrap() - by).abs() < 1e-9);
        }
        assert_eq!(r.coverage, Some(1.0));
        assert_eq!(r.masked, Some(0));
    }

    // The edge object: exactly the columns left of the tile are masked, in each band by its
    // own geometry.
    let r = row(&report, "edge");
    assert_eq!(r.status, "ok");
    let (planes, _, _) = read_cube(r.file.as_ref().unwrap());
    for b in Band::ALL {
        let (x, _) = band_wcs(&s.spec, b).sky_to_pixel(r.ra, r.dec).unwrap();
        let first = x.round() as i64 - 50;
        let outside = (1 - first).max(0) as usize;
        assert!(outside > 20, "the fixture puts the edge object near the edge");
        assert_eq!(masked_columns(&planes[b.index()]), (0..outside).collect::<Vec<_>>(), "band {b}");
    }
    assert!(r.coverage.unwrap() < 0.8 && r.coverage.unwrap() > 0.6);

    // The zero-weight stripe: its five columns are masked, where each band puts them.
    let r = row(&report, "stripe");
    let (planes, _, _) = read_cube(r.file.as_ref().unwrap());
    for b in Band::ALL {
        let (x, _) = band_wcs(&s.spec, b).sky_to_pixel(r.ra, r.dec).unwrap();
        let first0 = x.round() as i64 - 50 - 1; // 0-based tile column of cutout column 0
        let expected: Vec<usize> = (1200..1205).map(|c| (c - first0) as usize).collect();
        assert_eq!(masked_columns(&planes[b.index()]), expected, "band {b}");
    }
    assert_eq!(r.masked, Some(4 * 5 * 101));

    // Mask bits are kept: the bit-4 block shows up in the MASK extension where it lies.
    let r = row(&report, "masked-bits");
    let (_, _, mask) = read_cube(r.file.as_ref().unwrap());
    let mask = mask.unwrap();
    let rb = Band::R.index();
    let (x, y) = band_wcs(&s.spec, Band::R).sky_to_pixel(r.ra, r.dec).unwrap();
    let (x0, y0) = (x.round() as i64 - 51, y.round() as i64 - 51); // 0-based tile pixel of cutout (0, 0)
    for cy in 0..101i64 {
        for cx in 0..101i64 {
            let (tx, ty) = ((x0 + cx) as usize, (y0 + cy) as usize);
            let inside = MASK_BLOCK_BIT4.0.contains(&tx) && MASK_BLOCK_BIT4.1.contains(&ty);
            let bits = mask[rb * 101 * 101 + cy as usize * 101 + cx as usize];
            assert_eq!(bits & 4 != 0, inside, "at cutout ({cx}, {cy})");
        }
    }

    // The manifest on disk has a row per selected object, with the selection columns.
    let text = std::fs::read_to_string(s.out.join("manifest.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    for c in
        ["id", "ra", "dec", "tile", "x_r", "y_r", "coverage", "masked", "status", "reason", "MAG_AUTO", "Z_B", "MASK"]
    {
        assert!(header.iter().any(|h| h == c), "manifest lacks {c}: {header:?}");
    }
    assert_eq!(reader.records().count(), 6);
}

#[test]
fn strict_edges_skip_what_partial_edges_mask() {
    let s = kids_setup();
    let report = extract(&options(&s.tiles, &s.catalogue, &s.out, None, EdgeMode::Strict), &|_, _| {}).unwrap();
    assert_eq!(row(&report, "edge").status, "touches_edge");
    assert_eq!(row(&report, "KiDS J0844 centre").status, "ok");
    // Partial, but asking for more coverage than the edge object has.
    let mut o = options(&s.tiles, &s.catalogue, &s.out, None, EdgeMode::Partial);
    o.cut.min_coverage = 0.9;
    let report = extract(&o, &|_, _| {}).unwrap();
    let r = row(&report, "edge");
    assert_eq!(r.status, "low_coverage");
    assert!(r.reason.contains('%'), "{}", r.reason);
}

/// A source whose cutout has no valid pixel in one band (here the whole u tile has weight 0, as
/// where KiDS's u footprint ends) is rejected by default with that band named, and cut with the
/// band as NaN when asked; a project made from it says the band is blank.
#[test]
fn a_band_without_data_rejects_the_cutout_unless_blank_bands_are_kept() {
    let s = kids_setup();
    let wei = s.tiles.join(format!("{}_u_wei.fits", s.spec.name));
    {
        let mut f = fitsio::FitsFile::edit(&wei).unwrap();
        let hdu = f.primary_hdu().unwrap();
        let n: usize = match &hdu.info {
            fitsio::hdu::HduInfo::ImageInfo { shape, .. } => shape.iter().product(),
            _ => panic!("the weight is an image"),
        };
        hdu.write_image(&mut f, &vec![0u8; n]).unwrap();
    }
    let report = extract(&options(&s.tiles, &s.catalogue, &s.out, None, EdgeMode::Partial), &|_, _| {}).unwrap();
    let r = row(&report, "KiDS J0844 centre");
    assert_eq!(r.status, "all_masked");
    assert!(r.reason.contains("band u") && r.reason.contains("--keep-blank-bands"), "{}", r.reason);
    let mut o = options(&s.tiles, &s.catalogue, &s.out, None, EdgeMode::Partial);
    o.cut.keep_blank_bands = true;
    let report = extract(&o, &|_, _| {}).unwrap();
    let r = row(&report, "KiDS J0844 centre");
    assert_eq!(r.status, "ok", "{}", r.reason);
    assert!(r.reason.contains("band(s) u"), "{}", r.reason);
    let (planes, _, _) = read_cube(r.file.as_ref().expect("cube"));
    assert!(planes[0].iter().all(|v| v.is_nan()), "u left NaN");
    assert!(planes[2].iter().any(|v| v.is_finite()), "r kept");
    // Ingested again (with the flag, as the cube's u band is all NaN), it is said to be blank.
    let db = s.out.join("p.lensproj");
    let mut p = lens_inspect::project::Project::create_or_open(&db).unwrap();
    let options = lens_inspect::project::ingest::IngestOptions { keep_blank_bands: true, ..Default::default() };
    let summary = lens_inspect::project::ingest::ingest(&mut p, &s.out, &options, &|_, _| {}).unwrap();
    let rows = p.candidates().unwrap();
    assert_eq!(summary.blank_bands.get("u").copied(), Some(rows.len()), "every cube lost u: {summary:?}");
    assert!(rows.iter().all(|r| r.blank_bands() == vec![Band::U]));
    // Cut straight into a project by the command, the candidate says so too.
    let project = s.out.with_file_name("search.lensproj");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lens-inspect"))
        .args(["cutouts", "--keep-blank-bands", "--tiles"])
        .arg(&s.tiles)
        .arg("--catalogue")
        .arg(&s.catalogue)
        .arg("--project")
        .arg(&project)
        .args(["--out"])
        .arg(s.out.with_file_name("cubes2"))
        .output()
        .unwrap();
    assert!(out.status.code() == Some(3) || out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p = lens_inspect::project::Project::open_existing(&project).unwrap();
    assert_eq!(p.candidate_by_name("KiDS J0844 centre").unwrap().blank_bands(), vec![Band::U]);
}

fn small_tile(name: &str, crval: (f64, f64), scale: f64) -> TileSpec {
    TileSpec {
        name: name.into(),
        crval,
        width: 800,
        height: 800,
        scale,
        zero_weight_columns: 0..0,
        with_weights_and_masks: false,
    }
}

#[test]
fn ra_wraps_at_zero_and_southern_tiles_work() {
    let dir = tempfile::tempdir().unwrap();
    let tiles = dir.path().join("tiles");
    std::fs::create_dir_all(&tiles).unwrap();
    // 4"/px so that 800 px span 0.9 degrees: the tile at RA 0.25 reaches past RA 0 to 359.8.
    let wrap = small_tile("KiDS_DR4.0_0.2_-1.5", (0.25, -1.5), 4.0 / 3600.0);
    let south = small_tile("KiDS_DR4.0_45.0_-30.0", (45.0, -30.0), 0.2 / 3600.0);
    // Positions from pixels whose fractional parts keep every band (shifted by 1.7 px in x and
    // 0.3 px in y per band) away from half pixels, where the peak pixel would be a coin toss.
    let at = |t: &TileSpec, id: &str, x: f64, y: f64| {
        let (ra, dec) = band_wcs(t, Band::R).pixel_to_sky(x, y).unwrap();
        Source { id: id.into(), ra, dec, peak: 500.0 }
    };
    let sources = vec![
        at(&wrap, "west-of-zero", 715.1, 445.1),
        at(&wrap, "east-of-zero", 300.1, 300.0),
        at(&south, "south", 300.1, 420.0),
    ];
    assert!(sources[0].ra > 359.8 && sources[0].ra < 359.95, "RA {}", sources[0].ra);
    assert!(sources[1].ra > 0.3 && sources[1].ra < 1.0, "RA {}", sources[1].ra);
    write_tile(&tiles, &wrap, &sources[..2]).unwrap();
    write_tile(&tiles, &south, &sources[2..]).unwrap();
    let cat = dir.path().join("cat.fits");
    write_catalogue(&cat, &sources, &vec![SourceColumns::default(); 3]).unwrap();
    let out = dir.path().join("out");
    let report = extract(&options(&tiles, &cat, &out, None, EdgeMode::Strict), &|_, _| {}).unwrap();
    assert_eq!(report.written, 3, "{:?}", report.rows);
    assert_eq!(row(&report, "west-of-zero").tile, wrap.name);
    assert_eq!(row(&report, "south").tile, south.name);
    for r in &report.rows {
        let (planes, wcs, _) = read_cube(r.file.as_ref().unwrap());
        for (k, plane) in planes.iter().enumerate() {
            assert_eq!(argmax(plane), (50, 50), "{} band {k}: {:?} {:?}", r.id, r.x, r.y);
        }
        let (ra, _) = wcs.pixel_to_sky(51.0, 51.0).unwrap();
        let d = ((ra - r.ra + 540.0) % 360.0 - 180.0).abs() * 3600.0;
        assert!(d < 4.0 * 0.75, "{}: centre RA {ra} vs {}", r.id, r.ra);
    }
}

#[test]
fn bad_tiles_and_bad_catalogues_are_named_and_the_rest_goes_on() {
    let s = kids_setup();
    // A second tile, far away, with its r band truncated; a third without its g band; a fourth
    // in a projection we do not support.
    let corrupt = small_tile("KiDS_DR4.0_10.0_0.0", (10.0, 0.0), SCALE);
    let missing = small_tile("KiDS_DR4.0_20.0_0.0", (20.0, 0.0), SCALE);
    let sin = small_tile("KiDS_DR4.0_30.0_0.0", (30.0, 0.0), SCALE);
    for t in [&corrupt, &missing, &sin] {
        write_tile(&s.tiles, t, &[]).unwrap();
    }
    let r_file = s.tiles.join(format!("{}_r_sci.fits", corrupt.name));
    let bytes = std::fs::read(&r_file).unwrap();
    std::fs::write(&r_file, &bytes[..1000]).unwrap();
    std::fs::remove_file(s.tiles.join(format!("{}_g_sci.fits", missing.name))).unwrap();
    for b in Band::ALL {
        let f = s.tiles.join(format!("{}_{}_sci.fits", sin.name, b.letter()));
        let text = std::fs::read(&f).unwrap();
        let patched: Vec<u8> = String::from_utf8_lossy(&text[..2880])
            .replace("'RA---TAN'", "'RA---SIN'")
            .replace("'DEC--TAN'", "'DEC--SIN'")
            .into_bytes();
        let mut all = patched;
        all.extend_from_slice(&text[2880..]);
        std::fs::write(&f, all).unwrap();
    }
    // A source in each broken tile (its position from the tile's u band, which still opens).
    let mut sources = Vec::new();
    for t in [&corrupt, &missing, &sin] {
        let (ra, dec) = band_wcs(t, Band::U).pixel_to_sky(400.0, 400.0).unwrap();
        sources.push(Source { id: format!("in-{}", t.name), ra, dec, peak: 1.0 });
    }
    sources.push(source_at(&s.spec, "good", 400.3, 500.7));
    let cat = s.catalogue.with_file_name("four.fits");
    write_catalogue(&cat, &sources, &vec![SourceColumns::default(); 4]).unwrap();
    let report = extract(&options(&s.tiles, &cat, &s.out, None, EdgeMode::Partial), &|_, _| {}).unwrap();
    assert_eq!(row(&report, "good").status, "ok", "the good tile goes on");
    let problem = |t: &TileSpec| {
        report.tile_problems.iter().find(|p| p.tile == t.name).map(|p| p.problem.clone()).unwrap_or_default()
    };
    assert!(problem(&corrupt).contains(&r_file.display().to_string()), "{}", problem(&corrupt));
    assert!(problem(&missing).contains("band g missing"), "{}", problem(&missing));
    assert!(problem(&sin).contains("projection SIN is not supported"), "{}", problem(&sin));
    // The corrupt and missing-band tiles' objects are told why; the SIN tile has no footprint
    // we can read, so its object lies in no usable tile.
    for t in [&corrupt, &missing] {
        let r = row(&report, &format!("in-{}", t.name));
        assert_eq!(r.status, "tile_unusable", "{r:?}");
        assert!(r.reason.contains(&t.name));
    }
    assert_eq!(row(&report, &format!("in-{}", sin.name)).status, "no_tile");

    // A catalogue without coordinates, and a selection naming an unknown column.
    let no_coords = s.catalogue.with_file_name("nocoords.csv");
    std::fs::write(&no_coords, "ID,MAG_AUTO\na,20\n").unwrap();
    let e = extract(&options(&s.tiles, &no_coords, &s.out, None, EdgeMode::Partial), &|_, _| {}).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("nocoords.csv") && text.contains("right ascension"), "{text}");
    let e = extract(&options(&s.tiles, &s.catalogue, &s.out, Some("MAG_APER < 21"), EdgeMode::Partial), &|_, _| {})
        .unwrap_err();
    assert!(matches!(e, ExtractError::Catalogue(_)), "{e}");
    assert!(e.to_string().contains("MAG_APER"), "{e}");
    let e = extract(&options(&s.tiles, &s.catalogue, &s.out, Some("MAG_AUTO <"), EdgeMode::Partial), &|_, _| {})
        .unwrap_err();
    assert!(e.to_string().contains("MAG_AUTO <"), "{e}");
}

#[test]
fn a_csv_catalogue_with_other_column_names_works_too() {
    let s = kids_setup();
    let src = source_at(&s.spec, "csv-source", 700.0, 700.0);
    let csv = s.catalogue.with_file_name("cat.csv");
    std::fs::write(&csv, format!("KIDS_ID,ALPHA_J2000,DELTA_J2000,Z_B\ncsv-source,{},{},0.3\n", src.ra, src.dec))
        .unwrap();
    let report = extract(&options(&s.tiles, &csv, &s.out, Some("z_b < 0.5"), EdgeMode::Partial), &|_, _| {}).unwrap();
    assert_eq!(report.written, 1);
    // No source was drawn at this position, so only the position is checked.
    let r = row(&report, "csv-source");
    let (x, y) = band_wcs(&s.spec, Band::R).sky_to_pixel(r.ra, r.dec).unwrap();
    assert!((x - 700.0).abs() < 1e-6 && (y - 700.0).abs() < 1e-6);
}

#[test]
fn the_command_cuts_straight_into_a_project_and_says_what_it_rejected() {
    let s = kids_setup();
    let project = s.out.with_file_name("search.lensproj");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_lens-inspect"))
            .args(["cutouts", "--tiles"])
            .arg(&s.tiles)
            .arg("--catalogue")
            .arg(&s.catalogue)
            .arg("--project")
            .arg(&project)
            .args(["--select", "MAG_AUTO < 21 && (MASK & 28668) == 0", "--json"])
            .output()
            .unwrap()
    };
    let out = run();
    // Status 3: one selected source lies in no tile, and with the default --min-coverage 0.9 the
    // edge object is rejected.
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["written"], 4);
    assert_eq!(report["added_to_project"], 4);
    assert_eq!(report["rejected"]["no_tile"], 1);
    assert_eq!(report["rejected"]["low_coverage"], 1);
    assert_eq!(report["selection"][0]["removed"], 1);
    // The cubes go beside the project, and the project reads them back (the MASK extension is
    // not taken for a fifth band).
    let p = lens_inspect::project::Project::open_existing(&project).unwrap();
    let c = p.candidate_by_name("KiDS J0844 centre").unwrap();
    let expected = source_at(&s.spec, "x", 400.3, 500.7);
    assert!((c.ra_deg.unwrap() - expected.ra).abs() < 1e-12 && (c.dec_deg.unwrap() - expected.dec).abs() < 1e-12);
    assert_eq!(c.tile.as_deref(), Some(s.spec.name.as_str()));
    assert_eq!(c.metadata["MAG_AUTO"], 19.0);
    // The sky noise is measured for a project: the fixture's noise is uniform on [-0.5, 0.5),
    // whose robust sigma is 1.4826 x 0.25 = 0.37.
    assert!(c.sky_sigma.iter().all(|s| (s - 0.37).abs() < 0.03), "{:?}", c.sky_sigma);
    let wcs = TanWcs::from_json(&c.metadata["wcs"]).unwrap();
    let (x, y) = wcs.sky_to_pixel(expected.ra, expected.dec).unwrap();
    assert!((x - 51.0).abs() <= 0.5 && (y - 51.0).abs() <= 0.5, "({x}, {y})");
    let cutout = p.load_cutout(&c).unwrap();
    assert_eq!((cutout.width, cutout.height), (101, 101));
    assert!(project.with_file_name("search-cutouts").join("manifest.csv").exists());
    drop(p);
    // Running again adds nothing twice.
    let again: serde_json::Value = serde_json::from_slice(&run().stdout).unwrap();
    assert_eq!(again["added_to_project"], 0);
}

#[test]
fn ingesting_cubes_takes_the_sky_position_and_wcs_from_their_headers() {
    use lens_inspect::project::ingest::{ingest, IngestOptions, WCS_KEY};
    let s = kids_setup();
    extract(&options(&s.tiles, &s.catalogue, &s.out, None, EdgeMode::Partial), &|_, _| {}).unwrap();
    let db = s.out.with_file_name("p.lensproj");
    let mut p = lens_inspect::project::Project::create_or_open(&db).unwrap();
    let summary = ingest(&mut p, &s.out, &IngestOptions::default(), &|_, _| {}).unwrap();
    // No selection: every source but the one outside the tile.
    assert_eq!(summary.ingested, 7, "{:?}", summary.errors);
    let c = p.candidate_by_name("KiDS_J0844_centre").unwrap();
    // No catalogue here: the position is the cube's centre pixel through its own WCS, which lies
    // within half a pixel (0.1") of the source.
    let expected = source_at(&s.spec, "x", 400.3, 500.7);
    let d_ra = (c.ra_deg.unwrap() - expected.ra) * expected.dec.to_radians().cos() * 3600.0;
    let d_dec = (c.dec_deg.unwrap() - expected.dec) * 3600.0;
    assert!(d_ra.abs() <= 0.1 + 1e-9 && d_dec.abs() <= 0.1 + 1e-9, "({d_ra}, {d_dec}) arcsec");
    let wcs = TanWcs::from_json(&c.metadata[WCS_KEY]).unwrap();
    let (x, y) = wcs.sky_to_pixel(expected.ra, expected.dec).unwrap();
    assert!((x - 51.0).abs() <= 0.5 && (y - 51.0).abs() <= 0.5, "({x}, {y})");
}

#[test]
fn marked_points_export_as_ds9_regions_and_candidates_as_cubes_with_their_wcs() {
    use lens_inspect::project::{MarkedPoint, NewGrade, Project, Role, Score};
    let s = kids_setup();
    let project = s.out.with_file_name("search.lensproj");
    let bin = env!("CARGO_BIN_EXE_lens-inspect");
    let run = |args: &[&std::ffi::OsStr]| std::process::Command::new(bin).args(args).output().unwrap();
    let o = run(&[
        "cutouts".as_ref(),
        "--tiles".as_ref(),
        s.tiles.as_os_str(),
        "--catalogue".as_ref(),
        s.catalogue.as_os_str(),
        "--project".as_ref(),
        project.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    let centre = source_at(&s.spec, "x", 400.3, 500.7);
    {
        let mut p = Project::open_existing(&project).unwrap();
        let c = p.candidate_by_name("KiDS J0844 centre").unwrap();
        let ann = p.inspector("ann", Role::Volunteer).unwrap();
        // Two points: the cutout's centre pixel (0-based 50, 50) and one 10 pixels east-north.
        let points = vec![MarkedPoint { x: 50.0, y: 50.0 }, MarkedPoint { x: 40.0, y: 60.0 }];
        p.record_grade(&NewGrade {
            candidate_id: c.id,
            inspector_id: ann.id,
            score: Some(Score::Sure),
            points,
            ..Default::default()
        })
        .unwrap();
    }
    let regions = s.out.with_file_name("regions");
    let cubes = s.out.with_file_name("exported");
    let o = run(&[
        "export".as_ref(),
        "--project".as_ref(),
        project.as_os_str(),
        "--regions".as_ref(),
        regions.as_os_str(),
        "--cutouts".as_ref(),
        cubes.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(regions.join("KiDS_J0844_centre.reg")).unwrap();
    assert!(text.starts_with("# Region file format: DS9 version 4.1"), "{text}");
    assert!(text.contains("\nfk5\n"), "{text}");
    let points: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("point("))
        .map(|l| {
            let inner = &l[..l.find(')').unwrap()];
            let (a, b) = inner.split_once(',').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    assert_eq!(points.len(), 2);
    assert!(text.contains("text={ann: 5}"), "{text}");
    // The centre pixel's sky position is the source's to within half a pixel (0.1").
    let (ra, dec) = points[0];
    assert!(((ra - centre.ra) * centre.dec.to_radians().cos() * 3600.0).abs() <= 0.1 + 1e-6, "{ra}");
    assert!(((dec - centre.dec) * 3600.0).abs() <= 0.1 + 1e-6, "{dec}");
    // The second point is 10 pixels (2") east (larger RA) and 10 pixels north.
    let (ra2, dec2) = points[1];
    assert!(((ra2 - ra) * dec.to_radians().cos() * 3600.0 - 2.0).abs() < 0.01, "{ra2}");
    assert!(((dec2 - dec) * 3600.0 - 2.0).abs() < 0.01, "{dec2}");
    // In image frame: 1-based pixels.
    let o = run(&[
        "export".as_ref(),
        "--project".as_ref(),
        project.as_os_str(),
        "--regions".as_ref(),
        regions.as_os_str(),
        "--frame".as_ref(),
        "image".as_ref(),
    ]);
    assert!(o.status.success());
    let text = std::fs::read_to_string(regions.join("KiDS_J0844_centre.reg")).unwrap();
    assert!(text.contains("\nimage\npoint(51.00,51.00)") && text.contains("point(41.00,61.00)"), "{text}");

    // The exported cube has the same pixels and WCS as the one `cutouts` made.
    let (a, wa, _) = read_cube(&project.with_file_name("search-cutouts").join("KiDS_J0844_centre.fits"));
    let (b, wb, _) = read_cube(&cubes.join("KiDS_J0844_centre.fits"));
    for (pa, pb) in a.iter().zip(&b) {
        assert!(pa.iter().zip(pb).all(|(x, y)| x == y || (x.is_nan() && y.is_nan())));
    }
    assert_eq!(wa.pixel_to_sky(1.0, 1.0), wb.pixel_to_sky(1.0, 1.0));
    assert_eq!(std::fs::read_dir(&cubes).unwrap().count(), 6, "every candidate of the catalogue");
}

#[test]
fn ingest_reads_a_fits_table_catalogue_with_survey_column_names() {
    use fitsio::tables::{ColumnDataType, ColumnDescription};
    use lens_inspect::project::ingest::{ingest, IngestOptions};
    let s = kids_setup();
    let report = extract(&options(&s.tiles, &s.catalogue, &s.out, None, EdgeMode::Partial), &|_, _| {}).unwrap();
    let cut: Vec<&ManifestRow> = report.rows.iter().filter(|r| r.status == "ok").take(3).collect();
    let table = s.out.with_file_name("list.fits");
    {
        let mut f = fitsio::FitsFile::create(&table).open().unwrap();
        let text = |n: &str, w: usize| {
            ColumnDescription::new(n).with_type(ColumnDataType::String).that_repeats(w).create().unwrap()
        };
        let num = |n: &str| ColumnDescription::new(n).with_type(ColumnDataType::Double).create().unwrap();
        let hdu = f
            .create_table(
                "OBJECTS",
                &[text("KIDS_ID", 40), text("PATH", 300), num("RAJ2000"), num("DECJ2000"), num("MAG_AUTO")],
            )
            .unwrap();
        hdu.write_col(&mut f, "KIDS_ID", &cut.iter().map(|r| r.id.clone()).collect::<Vec<_>>()).unwrap();
        let paths: Vec<String> = cut.iter().map(|r| r.file.as_ref().unwrap().display().to_string()).collect();
        hdu.write_col(&mut f, "PATH", &paths).unwrap();
        // Positions deliberately not the headers', to see that the catalogue's win.
        hdu.write_col(&mut f, "RAJ2000", &[10.0, 11.0, 12.0]).unwrap();
        hdu.write_col(&mut f, "DECJ2000", &[-1.0, -2.0, -3.0]).unwrap();
        hdu.write_col(&mut f, "MAG_AUTO", &[20.1, 20.2, 20.3]).unwrap();
    }
    let mut p = lens_inspect::project::Project::create_or_open(&s.out.with_file_name("t.lensproj")).unwrap();
    let summary = ingest(&mut p, &table, &IngestOptions::default(), &|_, _| {}).unwrap();
    assert_eq!(summary.ingested, 3, "{:?}", summary.errors);
    let c = p.candidate_by_name(&cut[1].id).unwrap();
    assert_eq!((c.ra_deg, c.dec_deg), (Some(11.0), Some(-2.0)));
    assert_eq!(c.metadata["mag_auto"], 20.2);
    assert!(c.metadata.contains_key("wcs"), "the cube's WCS is kept as well");
}
