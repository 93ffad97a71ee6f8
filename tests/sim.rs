//! The simulator as a whole: noise against the depths, determinism across thread counts, units,
//! lens visibility, and the round trip through `ingest`.

use lens_inspect::cutout::Band;
use lens_inspect::project::ingest::{ingest, IngestOptions};
use lens_inspect::project::Project;
use lens_inspect::sim::{write_run, SimConfig, Simulator};
use std::path::Path;

#[test]
fn sky_noise_matches_the_requested_depths_within_five_percent() {
    let cfg = SimConfig::default();
    let sim = Simulator::new(cfg.clone());
    let aperture_pixels = std::f64::consts::PI * (1.0f64 / cfg.pixel_arcsec).powi(2);
    for band in Band::ALL {
        let mut values = Vec::new();
        for seed in 0..8 {
            values.extend(sim.blank_sky(seed).band(band).iter().map(|&v| v as f64));
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let sigma = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
        // The 5-sigma flux in a 2" diameter aperture, as a magnitude, is the depth.
        let five_sigma_flux = 5.0 * sigma * aperture_pixels.sqrt();
        let want = 10f64.powf(-0.4 * (cfg.depth_mag[band.index()] - cfg.zero_point));
        assert!((five_sigma_flux / want - 1.0).abs() < 0.05, "band {band}: {five_sigma_flux:e} vs {want:e}");
        assert!(mean.abs() < 0.05 * sigma, "band {band}: sky is not zero on average");
    }
}

fn files_under(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).expect("rel").display().to_string();
                out.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_same_seed_gives_byte_identical_files_with_one_and_two_threads() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = Simulator::new(SimConfig::default());
    let run = |threads: usize, seed: u64, out: &Path| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        pool.install(|| write_run(&sim, 24, seed, out, &|_| {})).expect("run");
        files_under(out)
    };
    let a = run(1, 42, &dir.path().join("one"));
    let b = run(2, 42, &dir.path().join("two"));
    assert_eq!(a.len(), b.len());
    assert!(a.len() > 24 * 4, "band files, masks and the truth table");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.0, y.0);
        assert!(x.1 == y.1, "{} differs between 1 and 2 threads", x.0);
    }
    // Another seed gives other pixels.
    let c = run(2, 43, &dir.path().join("other"));
    assert!(a.iter().zip(&c).any(|(x, y)| x.0 == y.0 && x.1 != y.1));
}

#[test]
fn zero_point_only_rescales_the_pixels() {
    let a = Simulator::new(SimConfig::default()).simulate("x", 5, 3, Some(true));
    let b = Simulator::new(SimConfig { zero_point: 30.0, ..SimConfig::default() }).simulate("x", 5, 3, Some(true));
    let factor = 10f64.powf(0.4 * 30.0);
    for band in Band::ALL {
        for (x, y) in a.cutout.band(band).iter().zip(b.cutout.band(band)) {
            let want = *x as f64 * factor;
            assert!((*y as f64 - want).abs() <= 1e-5 * want.abs().max(1e-3 * factor * 1e-11), "{x} -> {y}");
        }
    }
}

#[test]
fn lenses_are_visible_and_non_lenses_have_no_lensed_light() {
    let cfg = SimConfig::default();
    let sim = Simulator::new(cfg.clone());
    let (mut lenses, mut visible) = (0, 0);
    for k in 0..60 {
        let o = sim.simulate(&k.to_string(), 11, k, None);
        let masked = o.lensed_mask.iter().filter(|&&m| m).count();
        assert_eq!(masked, o.truth.lensed_pixels);
        if o.truth.is_lens {
            lenses += 1;
            let e = o.truth.theta_e_arcsec.expect("theta_e");
            assert!((0.8..=3.0).contains(&e), "theta_E {e}");
            if o.truth.arc_snr_g.expect("snr") >= cfg.min_arc_snr_g
                && o.truth.magnification.expect("mu") >= cfg.min_magnification
            {
                visible += 1;
            }
            assert!(masked > 0, "a lens without lensed pixels");
        } else {
            assert_eq!(masked, 0, "{:?} has lensed light", o.truth.kind);
            assert!(o.truth.theta_e_arcsec.is_none());
        }
    }
    assert!(lenses > 15 && lenses < 45, "lens fraction: {lenses} of 60");
    assert!(visible as f64 >= 0.9 * lenses as f64, "only {visible} of {lenses} lenses pass the visibility cuts");
}

#[test]
fn a_simulated_run_ingests_back_with_its_truth() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("sim");
    let summary = write_run(&Simulator::new(SimConfig::default()), 30, 7, &out, &|_| {}).expect("run");
    let mut p = Project::create_or_open(&dir.path().join("p.lensproj")).expect("project");
    let options = IngestOptions { truth: Some(out.join(lens_inspect::sim::TRUTH_FILE)), ..Default::default() };
    let s = ingest(&mut p, &out, &options, &|_, _| {}).expect("ingest");
    assert_eq!(s.ingested, 30, "{:?}", s.errors);
    assert_eq!((s.truth_matched, s.truth_unmatched), (30, 0));
    let lenses = p.candidates().expect("rows").iter().filter(|c| c.truth_is_lens == Some(true)).count();
    assert_eq!(lenses, summary.lenses);
    let row = p.candidate_by_name("100000").expect("first object");
    let back = p.load_cutout(&row).expect("pixels");
    let again = Simulator::new(SimConfig::default()).simulate("100000", 7, 0, None);
    assert_eq!(back.band(Band::G), again.cutout.band(Band::G), "ingest reads the simulator's pixels back exactly");
}
