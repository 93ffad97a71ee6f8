//! Ingestion of every input layout, and of every kind of broken input beside good objects.

mod common;

use common::*;
use lens_inspect::cutout::Band;
use lens_inspect::project::ingest::{ingest, IngestOptions, IngestSummary};
use lens_inspect::project::Project;
use lens_inspect::survey::fits_write::{self, Card, ImageHdu, PixelData};
use std::collections::BTreeMap;
use std::path::Path;

fn run(input: &Path, project: &Path, options: &IngestOptions) -> IngestSummary {
    let mut p = Project::create_or_open(project).expect("project");
    ingest(&mut p, input, options, &|_, _| {}).expect("ingest")
}

fn reasons(s: &IngestSummary) -> BTreeMap<String, String> {
    s.errors.iter().map(|e| (e.name.clone(), e.kind.clone())).collect()
}

#[test]
fn bologna_folder_good_objects_go_in_and_each_broken_one_has_its_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("challenge");
    let good = write_good_bologna(&root, 5);
    // Broken objects, each with one bad band file.
    let broken = |id: &str| {
        let c = cutout(id, 99);
        fits_write::write_bologna(&root, &c).expect("write");
    };
    for id in [
        "trunc_header",
        "trunc_block",
        "trunc_data",
        "empty",
        "text",
        "bitpix",
        "shape",
        "missing",
        "allnan",
        "blank_g",
        "blank_u_zero",
        "huge",
        "huge_gz",
        "deep",
    ] {
        broken(id);
    }
    truncate(&bologna_path(&root, Band::R, "trunc_header"), 1000);
    truncate(&bologna_path(&root, Band::R, "trunc_block"), 2880);
    truncate(&bologna_path(&root, Band::R, "trunc_data"), 2880 + 1000);
    truncate(&bologna_path(&root, Band::G, "empty"), 0);
    std::fs::write(bologna_path(&root, Band::I, "text"), "id,ra,dec\n1,2,3\n").expect("write");
    set_bitpix(&bologna_path(&root, Band::U, "bitpix"), 24);
    let hdu = ImageHdu::f32_image(10, 12, vec![1.0; 120]);
    fits_write::write_file(&bologna_path(&root, Band::R, "shape"), Some(&hdu), &[]).expect("write");
    std::fs::remove_file(bologna_path(&root, Band::U, "missing")).expect("rm");
    let nan = ImageHdu::f32_image(SIZE, SIZE, vec![f32::NAN; SIZE * SIZE]);
    for band in Band::ALL {
        fits_write::write_file(&bologna_path(&root, band, "allnan"), Some(&nan), &[]).expect("write");
    }
    // One band all NaN is skipped by default (SPEC 2.1) and read when asked; a band of one
    // constant value (a pipeline's fill) is read either way. Both are said to be blank.
    fits_write::write_file(&bologna_path(&root, Band::G, "blank_g"), Some(&nan), &[]).expect("write");
    let zero = ImageHdu::f32_image(SIZE, SIZE, vec![0.0; SIZE * SIZE]);
    fits_write::write_file(&bologna_path(&root, Band::U, "blank_u_zero"), Some(&zero), &[]).expect("write");

    // Headers that lie: a 100000 x 100000 image in one block of data (40 GB if believed), the
    // same gzipped, and a 3-D image of a million planes.
    for id in ["huge", "huge_gz"] {
        let path = bologna_path(&root, Band::G, id);
        set_card(&path, "NAXIS1", 100_000);
        set_card(&path, "NAXIS2", 100_000);
        truncate(&path, 2 * 2880);
    }
    let gz = bologna_path(&root, Band::G, "huge_gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &std::fs::read(&gz).expect("read")).expect("gzip");
    std::fs::write(&gz, enc.finish().expect("gzip")).expect("write");
    let deep = ImageHdu::f32_image(SIZE, SIZE, vec![1.0; SIZE * SIZE]);
    let deep_path = bologna_path(&root, Band::I, "deep");
    fits_write::write_file(&deep_path, Some(&deep), &[]).expect("write");
    {
        // NAXIS = 3 with NAXIS3 = 1000000: the NAXIS3 card replaces the END card's slot.
        let mut bytes = std::fs::read(&deep_path).expect("read");
        let end = bytes.chunks(80).position(|c| c.starts_with(b"END     ")).expect("END") * 80;
        let naxis3 = format!("{:<8}= {:>20}", "NAXIS3", 1_000_000);
        let mut card = [b' '; 80];
        card[..naxis3.len()].copy_from_slice(naxis3.as_bytes());
        bytes[end..end + 80].copy_from_slice(&card);
        bytes[end + 80..end + 83].copy_from_slice(b"END");
        std::fs::write(&deep_path, bytes).expect("write");
        set_card(&deep_path, "NAXIS", 3);
    }

    let db = dir.path().join("p.lensproj");
    let s = run(&root, &db, &IngestOptions::default());
    assert_eq!(s.ingested, 6, "{:#?}", s.errors);
    let blank: Vec<(&str, usize)> = s.blank_bands.iter().map(|(b, n)| (b.as_str(), *n)).collect();
    assert_eq!(blank, [("u", 1)]);
    let r = reasons(&s);
    let want = [
        ("trunc_header", "truncated"),
        ("trunc_block", "truncated"),
        ("trunc_data", "truncated"),
        ("empty", "empty_file"),
        ("text", "not_fits"),
        ("bitpix", "unsupported_bitpix"),
        ("shape", "shape_mismatch"),
        ("missing", "missing_band"),
        ("allnan", "all_blank"),
        ("blank_g", "all_nan"),
        ("huge", "impossible_size"),
        ("huge_gz", "impossible_size"),
        ("deep", "impossible_size"),
    ];
    for (name, kind) in want {
        assert_eq!(r.get(name).map(String::as_str), Some(kind), "{name}: {:#?}", s.errors);
    }
    assert_eq!(s.errors.len(), want.len());
    assert_eq!(s.skipped.values().sum::<usize>(), want.len());
    // The messages name the file and the band.
    let text = s.errors.iter().find(|e| e.name == "missing").expect("missing").reason.clone();
    assert!(text.contains("band u"), "{text}");
    let text = s.errors.iter().find(|e| e.name == "blank_g").expect("blank_g").reason.clone();
    assert!(text.contains("band g has no valid pixel") && text.contains("--keep-blank-bands"), "{text}");
    let text = s.errors.iter().find(|e| e.name == "bitpix").expect("bitpix").reason.clone();
    assert!(text.contains("24") && text.contains("imageSDSS_U-bitpix.fits"), "{text}");
    let text = s.errors.iter().find(|e| e.name == "huge").expect("huge").reason.clone();
    assert!(text.contains("100000 x 100000") && text.contains("imageSDSS_G-huge.fits"), "{text}");

    // The good ones read back with the right bands in the right place.
    let p = Project::open_existing(&db).expect("open");
    let row = p.candidate_by_name("blank_u_zero").expect("row");
    assert_eq!(row.blank_bands(), vec![Band::U]);
    assert_eq!(p.load_cutout(&row).expect("pixels").blank_bands(), vec![Band::U]);
    assert!(p.candidate_by_name(&good[0].name).expect("row").blank_bands().is_empty());
    // Asked to, ingest keeps the object whose g band is all NaN, and it loads again later.
    let kept = dir.path().join("kept.lensproj");
    let s = run(&root, &kept, &IngestOptions { keep_blank_bands: true, ..Default::default() });
    assert_eq!(s.ingested, 7, "{:#?}", s.errors);
    assert!(!reasons(&s).contains_key("blank_g") && reasons(&s).get("allnan").map(String::as_str) == Some("all_blank"));
    let p = Project::open_existing(&kept).expect("open");
    let row = p.candidate_by_name("blank_g").expect("row");
    assert_eq!(row.blank_bands(), vec![Band::G]);
    assert_eq!(p.load_cutout(&row).expect("pixels").blank_bands(), vec![Band::G]);
    for c in &good {
        let row = p.candidate_by_name(&c.name).expect("row");
        let back = p.load_cutout(&row).expect("pixels");
        for b in Band::ALL {
            assert_eq!(back.band(b), c.band(b), "{} band {b}", c.name);
        }
    }
}

#[test]
fn band_comes_from_the_file_name_letter_not_the_folder() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("c");
    let c = cutout("42", 3);
    fits_write::write_bologna(&root, &c).expect("write");
    // Swap the r and i files between Band1 and Band2 folders, keeping their names.
    let r = bologna_path(&root, Band::R, "42");
    let i = bologna_path(&root, Band::I, "42");
    let r_new = root.join("Band2").join(r.file_name().expect("name"));
    let i_new = root.join("Band1").join(i.file_name().expect("name"));
    std::fs::rename(&r, &r_new).expect("mv");
    std::fs::rename(&i, &i_new).expect("mv");
    let db = dir.path().join("p.lensproj");
    assert_eq!(run(&root, &db, &IngestOptions::default()).ingested, 1);
    let p = Project::open_existing(&db).expect("open");
    let back = p.load_cutout(&p.candidate_by_name("42").expect("row")).expect("pixels");
    assert_eq!(back.band(Band::R), c.band(Band::R));
    assert_eq!(back.band(Band::I), c.band(Band::I));
}

#[test]
fn every_bitpix_with_bscale_bzero_gzip_and_blank_reads_as_physical_values() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("c");
    let n: i32 = 16;
    let raw_u8: Vec<u8> = (0..n as u8).map(|k| k * 10).collect();
    let raw_i16: Vec<i16> = (0..n as i16).map(|k| k * 100 - 700).collect();
    let raw_i32: Vec<i32> = (0..n).map(|k| k * 100_000 - 3).collect();
    let raw_f64: Vec<f64> = (0..n).map(|k| k as f64 * 1.5e-12 - 2e-12).collect();
    let write = |band: Band, hdu: ImageHdu, gz: bool| {
        let mut path = bologna_path(&root, band, "7");
        if gz {
            path.set_extension("fits.gz");
        }
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        fits_write::write_file(&path, Some(&hdu), &[]).expect("write");
    };
    let hdu = |data: PixelData| ImageHdu { shape: vec![4, 4], data, keys: vec![] };
    write(
        Band::U,
        hdu(PixelData::U8(raw_u8.clone())).with_key("BSCALE", Card::Float(0.5)).with_key("BZERO", Card::Float(-1.0)),
        false,
    );
    write(
        Band::G,
        hdu(PixelData::I16(raw_i16.clone()))
            .with_key("BSCALE", Card::Float(2.0))
            .with_key("BZERO", Card::Float(32768.0))
            .with_key("BLANK", Card::Int(-700)),
        true,
    );
    write(Band::R, hdu(PixelData::I32(raw_i32.clone())).with_key("BSCALE", Card::Float(1e-3)), false);
    write(Band::I, hdu(PixelData::F64(raw_f64.clone())), false);
    let db = dir.path().join("p.lensproj");
    let s = run(&root, &db, &IngestOptions::default());
    assert_eq!(s.ingested, 1, "{:#?}", s.errors);
    let p = Project::open_existing(&db).expect("open");
    let c = p.load_cutout(&p.candidate_by_name("7").expect("row")).expect("pixels");
    let want_u: Vec<f32> = raw_u8.iter().map(|&v| v as f32 * 0.5 - 1.0).collect();
    assert_close(c.band(Band::U), &want_u, 1e-6);
    let want_g: Vec<f32> = raw_i16.iter().map(|&v| v as f32 * 2.0 + 32768.0).collect();
    assert!(c.band_mask(Band::G)[0], "BLANK pixel is masked");
    assert_eq!(c.masked_count(Band::G), 1);
    assert_close(&c.band(Band::G)[1..], &want_g[1..], 1e-6);
    let want_r: Vec<f32> = raw_i32.iter().map(|&v| (v as f64 * 1e-3) as f32).collect();
    assert_close(c.band(Band::R), &want_r, 1e-6);
    let want_i: Vec<f32> = raw_f64.iter().map(|&v| v as f32).collect();
    assert_close(c.band(Band::I), &want_i, 1e-6);
}

#[test]
fn nan_and_inf_pixels_become_masked() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("c");
    let mut c = cutout("n", 5);
    c.mask[Band::R.index()][3] = true;
    c.bands[Band::R.index()][3] = 0.0;
    fits_write::write_bologna(&root, &c).expect("write");
    // Put an Inf in the i band file by hand.
    let mut i = c.clone();
    i.bands[Band::I.index()][7] = f32::INFINITY;
    let hdu = ImageHdu::f32_image(SIZE, SIZE, i.bands[Band::I.index()].clone());
    fits_write::write_file(&bologna_path(&root, Band::I, "n"), Some(&hdu), &[]).expect("write");
    let db = dir.path().join("p.lensproj");
    assert_eq!(run(&root, &db, &IngestOptions::default()).ingested, 1);
    let p = Project::open_existing(&db).expect("open");
    let back = p.load_cutout(&p.candidate_by_name("n").expect("row")).expect("pixels");
    assert!(back.band_mask(Band::R)[3]);
    assert!(back.band_mask(Band::I)[7]);
    assert_eq!(back.masked_count(Band::R) + back.masked_count(Band::I) + back.masked_count(Band::G), 2);
    assert!(back.bands.iter().flatten().all(|v| v.is_finite()));
}

#[test]
fn folder_of_mefs_and_cubes_with_bands_from_headers() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("mefs");
    std::fs::create_dir_all(&root).expect("mkdir");
    let a = cutout("a", 1);
    let b = cutout("b", 2);
    let cube = cutout("cube", 3);
    std::fs::write(root.join("a.fits"), fits_write::cutout_to_mef(&a)).expect("write");
    // Shuffled order, bands named by FILTER.
    std::fs::write(root.join("b.fits"), mef_bytes(&b, [Band::I, Band::U, Band::R, Band::G], "FILTER")).expect("write");
    std::fs::write(root.join("cube.fits"), cube_bytes(&cube)).expect("write");
    // Gzipped MEF.
    let gz = cutout("gz", 4);
    let path = root.join("gz.fits.gz");
    let exts: Vec<ImageHdu> = Band::ALL
        .iter()
        .map(|&bd| {
            ImageHdu::f32_image(SIZE, SIZE, gz.band(bd).to_vec()).with_key("EXTNAME", Card::Str(bd.letter().into()))
        })
        .collect();
    fits_write::write_file(&path, None, &exts).expect("write");
    // A MEF cut at an HDU boundary: only the first two bands remain, cfitsio opens it silently.
    let full = fits_write::cutout_to_mef(&cutout("cut", 5));
    let hdu_len = SIZE * SIZE * 4;
    let ext_len = 2880 + hdu_len.div_ceil(2880) * 2880;
    std::fs::write(root.join("cut.fits"), &full[..2880 + 2 * ext_len]).expect("write");
    // A MEF cut in the middle of its last band's data.
    std::fs::write(root.join("cutdata.fits"), &full[..full.len() - 1500]).expect("write");
    // A MEF with a fifth image.
    let mut five = Band::ALL
        .map(|bd| {
            ImageHdu::f32_image(SIZE, SIZE, a.band(bd).to_vec()).with_key("EXTNAME", Card::Str(bd.letter().into()))
        })
        .to_vec();
    let mut weighted = five.clone();
    five.push(ImageHdu::f32_image(SIZE, SIZE, vec![0.0; SIZE * SIZE]).with_key("EXTNAME", Card::Str("EXTRA".into())));
    std::fs::write(root.join("five.fits"), fits_write::to_bytes(None, &five)).expect("write");
    // A weight extension beside the bands (as `cutouts` writes MASK) is not a fifth band.
    weighted
        .push(ImageHdu::f32_image(SIZE, SIZE, vec![0.0; SIZE * SIZE]).with_key("EXTNAME", Card::Str("WEIGHT".into())));
    std::fs::write(root.join("weighted.fits"), fits_write::to_bytes(None, &weighted)).expect("write");
    // Bands named twice.
    std::fs::write(root.join("twice.fits"), mef_bytes(&a, [Band::U, Band::G, Band::R, Band::R], "EXTNAME"))
        .expect("write");
    // Not FITS at all, with a FITS name.
    std::fs::write(root.join("notes.fits"), "hello").expect("write");

    let db = dir.path().join("p.lensproj");
    let s = run(&root, &db, &IngestOptions::default());
    assert_eq!(s.ingested, 5, "{:#?}", s.errors);
    let r = reasons(&s);
    assert!(!r.contains_key("weighted"), "{:#?}", s.errors);
    assert_eq!(r.get("cut").map(String::as_str), Some("missing_band"), "{:#?}", s.errors);
    assert_eq!(r.get("cutdata").map(String::as_str), Some("truncated"), "{:#?}", s.errors);
    assert_eq!(r.get("five").map(String::as_str), Some("band_count"));
    assert_eq!(r.get("twice").map(String::as_str), Some("duplicate_band"));
    assert_eq!(r.get("notes").map(String::as_str), Some("not_fits"));
    let p = Project::open_existing(&db).expect("open");
    for c in [&a, &b, &cube, &gz] {
        let back = p.load_cutout(&p.candidate_by_name(&c.name).expect("row")).expect("pixels");
        for bd in Band::ALL {
            assert_eq!(back.band(bd), c.band(bd), "{} band {bd}", c.name);
        }
    }
}

#[test]
fn fpack_compressed_files_are_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("fz");
    std::fs::create_dir_all(&root).expect("mkdir");
    let c = cutout("fz", 9);
    // cfitsio compresses (RICE) when the name asks for it.
    let spec = format!("{}[compress]", root.join("fz.fits.fz").display());
    {
        let mut f = fitsio::FitsFile::create(&spec).open().expect("create fz");
        for b in Band::ALL {
            let desc = fitsio::images::ImageDescription {
                data_type: fitsio::images::ImageType::Float,
                dimensions: &[SIZE, SIZE],
            };
            let hdu = f.create_image(b.letter().to_string(), &desc).expect("image");
            hdu.write_image(&mut f, c.band(b)).expect("write");
        }
    }
    let db = dir.path().join("p.lensproj");
    let s = run(&root, &db, &IngestOptions::default());
    assert_eq!(s.ingested, 1, "{:#?}", s.errors);
    let p = Project::open_existing(&db).expect("open");
    let back = p.load_cutout(&p.candidate_by_name("fz").expect("row")).expect("pixels");
    // RICE quantises floats: values agree to a small fraction of the noise.
    for b in Band::ALL {
        let noise = lens_inspect::cutout::sky_stats(&c.valid_values(b)).expect("stats").sigma;
        let worst = back.band(b).iter().zip(c.band(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(worst < 0.5 * noise, "band {b}: {worst}");
    }
}

#[test]
fn catalogue_csv_with_band_files_or_one_path_keeps_extra_columns() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("bands");
    let good = write_good_bologna(&root, 2);
    let mef = cutout("m", 11);
    std::fs::write(dir.path().join("m.fits"), fits_write::cutout_to_mef(&mef)).expect("write");
    let rel =
        |b: Band, id: &str| bologna_path(&root, b, id).strip_prefix(dir.path()).expect("rel").display().to_string();
    let mut csv = String::from("id,u,g,r,i,ra,dec,tile,mag_r,z_phot,note\n");
    for c in &good {
        let n = &c.name;
        csv += &format!(
            "obj{n},{},{},{},{},150.{n},2.5,KIDS_150.0_2.5,21.{n},0.4,bright\n",
            rel(Band::U, n),
            rel(Band::G, n),
            rel(Band::R, n),
            rel(Band::I, n)
        );
    }
    csv += "gone,nothere_u.fits,nothere_g.fits,nothere_r.fits,nothere_i.fits,1,1,T,20,0.1,x\n";
    csv += ",a.fits,b.fits,c.fits,d.fits,1,1,T,20,0.1,x\n";
    std::fs::write(dir.path().join("cat.csv"), csv).expect("write");
    std::fs::write(dir.path().join("mefs.csv"), "id,path,ra,dec\nm,m.fits,10.5,-3.25\n").expect("write");

    let db = dir.path().join("p.lensproj");
    let s = run(&dir.path().join("cat.csv"), &db, &IngestOptions::default());
    assert_eq!(s.ingested, 2, "{:#?}", s.errors);
    let r = reasons(&s);
    assert_eq!(r.get("gone").map(String::as_str), Some("missing_file"));
    assert_eq!(r.get("line 5").map(String::as_str), Some("bad_row"));
    let s = run(&dir.path().join("mefs.csv"), &db, &IngestOptions::default());
    assert_eq!(s.ingested, 1, "{:#?}", s.errors);

    let p = Project::open_existing(&db).expect("open");
    let row = p.candidate_by_name("obj1").expect("row");
    assert_eq!(row.ra_deg, Some(150.1));
    assert_eq!(row.dec_deg, Some(2.5));
    assert_eq!(row.tile.as_deref(), Some("KIDS_150.0_2.5"));
    assert_eq!(row.metadata.get("mag_r"), Some(&serde_json::json!(21.1)));
    assert_eq!(row.metadata.get("z_phot"), Some(&serde_json::json!(0.4)));
    assert_eq!(row.metadata.get("note"), Some(&serde_json::json!("bright")));
    let back = p.load_cutout(&row).expect("pixels");
    assert_eq!(back.band(Band::G), good[1].band(Band::G));
    let m = p.candidate_by_name("m").expect("mef row");
    assert_eq!((m.ra_deg, m.dec_deg), (Some(10.5), Some(-3.25)));
}

#[test]
fn reingesting_adds_nothing_and_truth_is_applied() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("c");
    write_good_bologna(&root, 4);
    let truth = dir.path().join("truth.csv");
    std::fs::write(&truth, "ID,is_lens,Einstein_area,numb_pix_lensed_image,flux_lensed_image_in_sigma\n0,1,0.5,120,30.5\n1,0,0,0,0\n2,1,1.1,300,80\n99,1,1,1,1\n").expect("write");
    let db = dir.path().join("p.lensproj");
    let opts = IngestOptions { truth: Some(truth), ..Default::default() };
    let first = run(&root, &db, &opts);
    assert_eq!((first.ingested, first.already_present), (4, 0));
    assert_eq!((first.truth_matched, first.truth_unmatched), (3, 1));
    let second = run(&root, &db, &opts);
    assert_eq!((second.ingested, second.already_present), (0, 4));
    let p = Project::open_existing(&db).expect("open");
    let c = p.counts().expect("counts");
    assert_eq!((c.candidates, c.with_truth), (4, 3));
    assert_eq!(p.candidate_by_name("0").expect("row").truth_is_lens, Some(true));
    assert_eq!(p.candidate_by_name("1").expect("row").truth_is_lens, Some(false));
    assert_eq!(p.candidate_by_name("3").expect("row").truth_is_lens, None);
}

#[test]
fn training_candidates_need_truth() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("c");
    write_good_bologna(&root, 3);
    let truth = dir.path().join("truth.csv");
    std::fs::write(&truth, "ID,is_lens\n0,1\n1,0\n").expect("write");
    let db = dir.path().join("p.lensproj");
    let s = run(
        &root,
        &db,
        &IngestOptions { truth: Some(truth), training: true, store_pixels: true, ..Default::default() },
    );
    assert_eq!(s.ingested, 2);
    assert_eq!(reasons(&s).get("2").map(String::as_str), Some("no_truth"));
    let p = Project::open_existing(&db).expect("open");
    assert_eq!(p.counts().expect("counts").training_candidates, 2);
    // Stored pixels: the project no longer needs the files.
    std::fs::remove_dir_all(&root).expect("rm");
    let row = p.candidate_by_name("1").expect("row");
    assert!(p.load_cutout(&row).is_ok());
}

#[test]
fn an_unreadable_band_folder_is_reported_and_its_objects_miss_that_band() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("c");
    write_good_bologna(&root, 2);
    // Band3 (g) replaced by a link to nowhere: listing the folder fails.
    std::fs::remove_dir_all(root.join("Band3")).expect("rm");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), root.join("Band3")).expect("symlink");
    let db = dir.path().join("p.lensproj");
    let s = run(&root, &db, &IngestOptions::default());
    assert_eq!(s.ingested, 0);
    assert_eq!(s.skipped.get("unreadable"), Some(&1), "{:#?}", s.errors);
    assert_eq!(s.skipped.get("missing_band"), Some(&2));
    let e = s.errors.iter().find(|e| e.name == "0").expect("object 0");
    assert!(e.reason.contains("band g") && e.reason.contains("Band3"), "{}", e.reason);
}

#[test]
fn a_missing_input_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut p = Project::create_or_open(&dir.path().join("p.lensproj")).expect("project");
    let err = ingest(&mut p, &dir.path().join("nope"), &IngestOptions::default(), &|_, _| {}).expect_err("must fail");
    assert!(err.to_string().contains("nope"), "{err}");
    std::fs::write(dir.path().join("x.txt"), "x").expect("write");
    let err = ingest(&mut p, &dir.path().join("x.txt"), &IngestOptions::default(), &|_, _| {}).expect_err("must fail");
    assert!(err.to_string().contains("x.txt"), "{err}");
}
