//! Measurements behind `lens-inspect bench ...`: speed is measured here, never asserted in tests.
//!
//! Each benchmark writes its own data (nothing is downloaded), warms the page cache, then times.

use crate::cutout::Band;
use crate::project::ingest::{ingest, IngestOptions};
use crate::project::Project;
use crate::render::{composite, DisplaySettings, FluxScale};
use crate::survey::fits_write::write_bologna;
use crate::survey::fixtures::synthetic_cutout;
use rayon::prelude::*;
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestBench {
    pub cutouts: usize,
    pub seconds: f64,
    pub cutouts_per_s: f64,
    pub threads: usize,
}

/// Writes `n` cutouts (101 x 101, 4 band files each, Bologna layout) under `dir`/bologna, then
/// reads them once to warm the cache.
pub fn write_ingest_bench_data(dir: &Path, n: usize) -> anyhow::Result<()> {
    let data = dir.join("bologna");
    (0..n).into_par_iter().try_for_each(|k| write_bologna(&data, &synthetic_cutout(&k.to_string(), 101, k as u64)))?;
    for band in Band::ALL {
        let folder = data.join(crate::survey::fits_write::bologna_folder(band));
        for e in std::fs::read_dir(folder)? {
            std::hint::black_box(std::fs::read(e?.path())?);
        }
    }
    Ok(())
}

/// Times `ingest` of what [`write_ingest_bench_data`] wrote into a fresh project.
pub fn ingest_speed(dir: &Path, n: usize) -> anyhow::Result<IngestBench> {
    let data = dir.join("bologna");
    let db = dir.join("bench.lensproj");
    let _ = std::fs::remove_file(&db);
    let mut project = Project::create_or_open(&db)?;
    let t = Instant::now();
    let summary = ingest(&mut project, &data, &IngestOptions::default(), &|_, _| {})?;
    let seconds = t.elapsed().as_secs_f64();
    anyhow::ensure!(summary.ingested == n, "ingested {} of {n}: {:?}", summary.ingested, summary.errors.first());
    Ok(IngestBench { cutouts: n, seconds, cutouts_per_s: n as f64 / seconds, threads: rayon::current_num_threads() })
}

/// Runs benches/ingest_astropy.py on the same folder: the notebook way (astropy reads, WCS,
/// sky sigma, SQLite rows), or with `pixels_only` only the reads.
pub fn astropy_ingest(python: &Path, script: &Path, dir: &Path, pixels_only: bool) -> anyhow::Result<PythonBench> {
    let mut args = vec![dir.join("bologna").into_os_string(), dir.join("astropy.db").into_os_string()];
    if pixels_only {
        args.push("--pixels-only".into());
    }
    run_python_bench(python, script, &args)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CompositeBench {
    /// The SIMD features the process saw (the composite has AVX-512 and AVX2 paths).
    pub cpu: String,
    pub size: usize,
    pub iterations: usize,
    pub microseconds_per_composite: f64,
}

/// Times the Lupton composite of one `size` x `size` cutout, on one thread.
pub fn composite_speed(size: usize, iterations: usize) -> CompositeBench {
    let cutout = synthetic_cutout("bench", size, 7);
    let scale = FluxScale::of_cutout(&cutout);
    let settings = DisplaySettings::default();
    for _ in 0..iterations.min(100) {
        std::hint::black_box(composite(&cutout, &settings, scale));
    }
    let t = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(composite(std::hint::black_box(&cutout), &settings, scale));
    }
    CompositeBench {
        cpu: crate::cpu_limit::features_seen(),
        size,
        iterations,
        microseconds_per_composite: t.elapsed().as_secs_f64() * 1e6 / iterations as f64,
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SimulateBench {
    pub cutouts: usize,
    pub threads: usize,
    /// Simulation alone, in memory (4 bands each), KiDS look.
    pub simulate_cutouts_per_s: f64,
    /// The same on one thread (what to set beside a single-threaded simulator).
    pub one_thread_cutouts_per_s: f64,
    /// Lenses only, on one thread: what lenstronomy's script makes (every cutout a lens), so the
    /// like-for-like figure beside it; a non-lens with its look-alike galaxy costs about as much.
    pub one_thread_lenses_per_s: f64,
    /// The same with every nuisance randomised and artefacts (what `train --simulate` draws),
    /// then preprocessed for the model, as the training stream does.
    pub randomised_cutouts_per_s: f64,
    /// Simulation and writing the Bologna layout (4 FITS files + mask + truth row each).
    pub write_cutouts_per_s: f64,
}

/// Cutouts per second of the simulator, in memory and writing files under `dir`.
pub fn simulate_speed(dir: &Path, n: usize) -> anyhow::Result<SimulateBench> {
    use crate::sim::{SimConfig, Simulator};
    let sim = Simulator::new(SimConfig::default());
    // Warm up (FFT plans, page faults).
    (0..20u64).into_par_iter().for_each(|k| {
        std::hint::black_box(sim.simulate("w", 0, k, None));
    });
    // Objects simulated per second by `f(index)` over `count` indices on the current pool.
    let rate = |count: usize, f: &(dyn Fn(u64) + Sync)| {
        let t = Instant::now();
        (0..count as u64).into_par_iter().for_each(f);
        count as f64 / t.elapsed().as_secs_f64()
    };
    let simulate_cutouts_per_s = rate(n, &|k| {
        std::hint::black_box(sim.simulate(&k.to_string(), 1, k, None));
    });
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let one_n = (n / 2).max(1);
    let one_thread_cutouts_per_s = one.install(|| {
        rate(one_n, &|k| {
            std::hint::black_box(sim.simulate(&k.to_string(), 2, k, None));
        })
    });
    let one_thread_lenses_per_s = one.install(|| {
        rate(one_n, &|k| {
            std::hint::black_box(sim.simulate(&k.to_string(), 3, k, Some(true)));
        })
    });
    let randomised = Simulator::new(SimConfig::randomised());
    let randomised_cutouts_per_s = rate(n, &|k| {
        let o = randomised.simulate(&k.to_string(), 1, k, None);
        std::hint::black_box(crate::cutout::preprocess(&o.cutout, crate::cutout::DEFAULT_CLIP_SIGMA));
    });
    let out = dir.join("sim");
    let summary = crate::sim::write_run(&sim, n, 1, &out, &|_| {})?;
    Ok(SimulateBench {
        cutouts: n,
        threads: rayon::current_num_threads(),
        simulate_cutouts_per_s,
        one_thread_cutouts_per_s,
        one_thread_lenses_per_s,
        randomised_cutouts_per_s,
        write_cutouts_per_s: summary.cutouts_per_s,
    })
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelBench {
    pub arch: String,
    pub threads: usize,
    /// The SIMD features the process saw (`--cpu avx2` hides AVX-512).
    pub cpu: String,
    pub inference_batch: usize,
    pub inference_cutouts_per_s: f64,
    pub train_batch: usize,
    pub train_cutouts_per_s: f64,
}

/// Cutouts per second of the network on random 4 x 101 x 101 inputs: inference at batch 64 and
/// training steps (forward, backward, Adam) at batch 32, after one warm-up each. The same
/// measurement as benches/torch_reference.py makes for PyTorch.
pub fn model_speed(arch: crate::model::net::Arch, repeats: usize) -> ModelBench {
    use crate::model::net::LensNet;
    use crate::model::train::bce_with_logits;
    use burn::module::Module;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::{Device, Distribution, Tensor};
    let repeats = repeats.max(1);
    let device = Device::flex();
    device.seed(1);
    let net = LensNet::new(arch, &device).valid();
    let x = Tensor::<4>::random([64, 4, 101, 101], Distribution::Normal(0.0, 1.0), &device);
    std::hint::black_box(net.forward(x.clone()).try_into_vec_as::<f32>().ok());
    let t = Instant::now();
    for _ in 0..repeats {
        std::hint::black_box(net.forward(x.clone()).try_into_vec_as::<f32>().ok());
    }
    let inference = (64 * repeats) as f64 / t.elapsed().as_secs_f64();
    let ad = Device::flex().autodiff();
    let mut net = LensNet::new(arch, &ad);
    let mut optim = AdamConfig::new().init();
    let x = Tensor::<4>::random([32, 4, 101, 101], Distribution::Normal(0.0, 1.0), &ad);
    let y = Tensor::<1>::random([32], Distribution::Bernoulli(0.5), &ad);
    let mut step = |net: LensNet| -> LensNet {
        let loss = bce_with_logits(net.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        optim.step(1e-3, net, grads)
    };
    net = step(net);
    let t = Instant::now();
    for _ in 0..repeats {
        net = step(net);
    }
    std::hint::black_box(&net);
    let train = (32 * repeats) as f64 / t.elapsed().as_secs_f64();
    ModelBench {
        arch: arch.name().into(),
        threads: rayon::current_num_threads(),
        cpu: crate::cpu_limit::features_seen(),
        inference_batch: 64,
        inference_cutouts_per_s: inference,
        train_batch: 32,
        train_cutouts_per_s: train,
    }
}

/// What `benches/torch_reference.py` printed: PyTorch's figures for the same measurement.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TorchBench {
    pub arch: String,
    pub inference_cutouts_per_s: f64,
    pub train_cutouts_per_s: f64,
    pub torch: String,
}

/// One interleaved pair of runs, PyTorch's then burn's, and their ratios (burn / PyTorch).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelComparison {
    pub burn: ModelBench,
    pub pytorch: TorchBench,
    pub inference_ratio: f64,
    pub train_ratio: f64,
}

/// Runs `python script --arch ARCH --repeats N` and reads the JSON line it prints last. The
/// error names the interpreter and says why (not found, torch missing, bad output).
pub fn torch_speed(
    python: &Path,
    script: &Path,
    arch: crate::model::net::Arch,
    repeats: usize,
) -> anyhow::Result<TorchBench> {
    use anyhow::Context;
    let mut command = std::process::Command::new(python);
    if crate::cpu_limit::is_limited() {
        // `--cpu avx2` does not survive `exec`: hold PyTorch's own kernels, oneDNN and MKL to
        // AVX2 as well, so both sides take the same path.
        command
            .env("ATEN_CPU_CAPABILITY", "avx2")
            .env("ONEDNN_MAX_CPU_ISA", "AVX2")
            .env("MKL_ENABLE_INSTRUCTIONS", "AVX2");
    }
    let out = command
        .arg(script)
        .args(["--arch", arch.name(), "--repeats", &repeats.max(1).to_string()])
        .output()
        .with_context(|| format!("could not run {} (the Python for the PyTorch reference)", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        anyhow::bail!(
            "{} {} failed ({}): {}",
            python.display(),
            script.display(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
    }
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).with_context(|| {
        format!("{} printed no JSON line: {:?}", script.display(), stdout.chars().take(200).collect::<String>())
    })?;
    serde_json::from_str(line)
        .with_context(|| format!("{} printed JSON without the expected fields: {line}", script.display()))
}

/// `pairs` interleaved runs of [`model_speed`] and [`torch_speed`], so both see the same machine
/// state (turbo, other load) as nearly as possible.
pub fn compare_with_torch(
    python: &Path,
    script: &Path,
    arch: crate::model::net::Arch,
    repeats: usize,
    pairs: usize,
) -> anyhow::Result<Vec<ModelComparison>> {
    (0..pairs.max(1))
        .map(|_| {
            // PyTorch first: a missing interpreter or torch fails before burn's run.
            let pytorch = torch_speed(python, script, arch, repeats)?;
            let burn = model_speed(arch, repeats);
            Ok(ModelComparison {
                inference_ratio: burn.inference_cutouts_per_s / pytorch.inference_cutouts_per_s,
                train_ratio: burn.train_cutouts_per_s / pytorch.train_cutouts_per_s,
                burn,
                pytorch,
            })
        })
        .collect()
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CutoutsBench {
    pub tiles: usize,
    pub side: usize,
    pub objects: usize,
    pub cutouts: usize,
    pub seconds: f64,
    pub cutouts_per_s: f64,
    pub threads: usize,
    /// Peak resident memory of this process (VmHWM), MB.
    pub peak_rss_mb: f64,
}

/// Peak resident set size of this process so far, in MB (Linux; `NaN` elsewhere).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Writes `tiles` survey tiles of `side` x `side` pixels per band (sparse files: real headers,
/// zero pixels) and a catalogue of `objects` sources spread over them, under `dir`.
pub fn write_cutout_bench_data(dir: &Path, tiles: usize, side: usize, objects: usize) -> anyhow::Result<()> {
    use crate::survey::tile_fixtures::{band_wcs, write_catalogue, write_sparse_tile, Source, SourceColumns, TileSpec};
    use rand::{RngExt, SeedableRng};
    let tile_dir = dir.join("tiles");
    std::fs::create_dir_all(&tile_dir)?;
    let scale = 0.2 / 3600.0;
    let spacing = side as f64 * scale * 1.1;
    let specs: Vec<TileSpec> = (0..tiles)
        .map(|k| TileSpec {
            name: format!("KiDS_DR4.0_{:.1}_0.0", 10.0 + k as f64 * spacing),
            crval: (10.0 + k as f64 * spacing, 0.0),
            width: side,
            height: side,
            scale,
            zero_weight_columns: 0..0,
            with_weights_and_masks: false,
        })
        .collect();
    for s in &specs {
        write_sparse_tile(&tile_dir, s)?;
    }
    let mut rng = rand_pcg::Pcg64::seed_from_u64(11);
    let sources: Vec<Source> = (0..objects)
        .map(|k| {
            let spec = &specs[k % tiles];
            let x = rng.random_range(60.0..side as f64 - 60.0);
            let y = rng.random_range(60.0..side as f64 - 60.0);
            let (ra, dec) = band_wcs(spec, Band::R).pixel_to_sky(x, y).expect("inside the tile");
            Source { id: format!("KiDS J{k:07}"), ra, dec, peak: 0.0 }
        })
        .collect();
    write_catalogue(&dir.join("catalogue.fits"), &sources, &vec![SourceColumns::default(); objects])?;
    Ok(())
}

/// Times `cutouts` over the data [`write_cutout_bench_data`] wrote (cubes written to OUT).
pub fn cutouts_speed(dir: &Path, tiles: usize, side: usize, objects: usize) -> anyhow::Result<CutoutsBench> {
    use crate::survey::extract::{extract, ExtractOptions};
    use crate::survey::tiles::{CutOptions, EdgeMode, KIDS_PATTERN};
    let out = dir.join("out-rust");
    let _ = std::fs::remove_dir_all(&out);
    let options = ExtractOptions {
        tiles: dir.join("tiles"),
        catalogue: dir.join("catalogue.fits"),
        pattern: KIDS_PATTERN.into(),
        select: None,
        cut: CutOptions { size: 101, edge: EdgeMode::Partial, min_coverage: 0.9, keep_blank_bands: false },
        manifest: out.join("manifest.csv"),
        out,
        measure_sky: false,
    };
    let t = Instant::now();
    let report = extract(&options, &|_, _| {})?;
    let seconds = t.elapsed().as_secs_f64();
    anyhow::ensure!(report.written == objects, "cut {} of {objects}: {:?}", report.written, report.rejected);
    Ok(CutoutsBench {
        tiles,
        side,
        objects,
        cutouts: report.written,
        seconds,
        cutouts_per_s: report.written as f64 / seconds,
        threads: rayon::current_num_threads(),
        peak_rss_mb: peak_rss_mb(),
    })
}

/// What a Python benchmark script (astropy, lenstronomy) reports: how many cutouts in how long.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PythonBench {
    pub cutouts: usize,
    pub seconds: f64,
}

/// Runs benches/cutouts_astropy.py (astropy `Cutout2D` on memory-mapped tiles, the same tiles and
/// catalogue, writing the same cubes) and reads its JSON line.
pub fn astropy_cutouts(python: &Path, script: &Path, dir: &Path) -> anyhow::Result<PythonBench> {
    let out = dir.join("out-astropy");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let args = [dir.join("tiles").into_os_string(), dir.join("catalogue.fits").into_os_string(), out.into_os_string()];
    run_python_bench(python, script, &args)
}

/// Runs benches/simulate_lenstronomy.py: `n` four-band lenses simulated by lenstronomy, the way
/// a lenstronomy script would make a KiDS-like set.
pub fn lenstronomy_simulate(python: &Path, script: &Path, n: usize) -> anyhow::Result<PythonBench> {
    run_python_bench(python, script, &[n.to_string().into()])
}

/// Runs a Python benchmark script and reads the `{"cutouts": N, "seconds": S}` line it prints last.
fn run_python_bench(python: &Path, script: &Path, args: &[std::ffi::OsString]) -> anyhow::Result<PythonBench> {
    use anyhow::Context;
    let mut command = std::process::Command::new(python);
    if crate::cpu_limit::is_limited() {
        // As for PyTorch above: numpy 2's AVX-512 dispatch targets off, so lenstronomy's and
        // astropy's array loops take their AVX2 code as ours do.
        command.env("NPY_DISABLE_CPU_FEATURES", "X86_V4 AVX512_ICL AVX512_SPR");
    }
    let o = command.arg(script).args(args).output().with_context(|| format!("could not run {}", python.display()))?;
    anyhow::ensure!(o.status.success(), "{} failed: {}", script.display(), String::from_utf8_lossy(&o.stderr));
    let line = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(line.lines().last().unwrap_or(""))
        .with_context(|| format!("{} printed no JSON line: {line}", script.display()))
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ZooniverseBench {
    pub classifications: usize,
    pub users: usize,
    pub candidates: usize,
    pub seconds: f64,
    pub classifications_per_s: f64,
    pub added: usize,
    /// The same file again: everything already present.
    pub again_seconds: f64,
}

/// Writes a Panoptes classifications export of `n` rows (`users` volunteers, `candidates`
/// subjects) and times `grades import --zooniverse` into a fresh project, then again.
pub fn zooniverse_speed(dir: &Path, n: usize, users: usize, candidates: usize) -> anyhow::Result<ZooniverseBench> {
    use crate::project::zooniverse::{import_classifications, AnswerMap};
    use crate::project::NewCandidate;
    use crate::survey::{ObjectSource, ObjectSpec};
    let db = dir.join("zooniverse.lensproj");
    let _ = std::fs::remove_file(&db);
    let mut project = Project::create_or_open(&db)?;
    let cutout = synthetic_cutout("x", 21, 1);
    let items: Vec<NewCandidate> = (0..candidates)
        .map(|k| {
            let spec = ObjectSpec::new(format!("KiDS J{k:07}"), ObjectSource::File { path: "/x.fits".into() });
            NewCandidate::from_cutout(spec, &cutout, false)
        })
        .collect();
    project.insert_candidates(&items)?;
    let csv_path = dir.join("classifications.csv");
    {
        let mut w = csv::Writer::from_path(&csv_path)?;
        w.write_record([
            "classification_id",
            "user_name",
            "user_id",
            "user_ip",
            "workflow_id",
            "workflow_name",
            "workflow_version",
            "created_at",
            "gold_standard",
            "expert",
            "metadata",
            "annotations",
            "subject_data",
            "subject_ids",
        ])?;
        for k in 0..n {
            let subject = (k * 7919) % candidates;
            let answer = if k % 3 == 0 { "Yes" } else { "No" };
            let annotations = format!(r#"[{{"task":"T0","task_label":"Is there a lens?","value":"{answer}"}}]"#);
            let subject_data = format!(
                r##"{{"{sid}":{{"retired":null,"image_name_1":"KiDS_J{subject:07}.png","#name":"KiDS J{subject:07}"}}}}"##,
                sid = 9_000_000 + subject
            );
            let time = format!("2024-05-{:02} {:02}:{:02}:{:02} UTC", 1 + k % 28, k % 24, k % 60, (k / 60) % 60);
            w.write_record([
                &(400_000_000 + k).to_string(),
                &format!("volunteer{}", k % users),
                &(k % users).to_string(),
                "0123abcd",
                "1234",
                "Lens or not",
                "12.3",
                &time,
                "",
                "",
                "{}",
                &annotations,
                &subject_data,
                &(9_000_000 + subject).to_string(),
            ])?;
        }
        w.flush()?;
    }
    let answers = AnswerMap::parse("Yes=5,No=0", None).map_err(anyhow::Error::msg)?;
    let t = Instant::now();
    let r = import_classifications(&mut project, &csv_path, &answers)?;
    let seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let again = import_classifications(&mut project, &csv_path, &answers)?;
    let again_seconds = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        r.added == n && again.added == 0,
        "added {} then {}: {:?}",
        r.added,
        again.added,
        r.skipped.first()
    );
    Ok(ZooniverseBench {
        classifications: n,
        users,
        candidates,
        seconds,
        classifications_per_s: n as f64 / seconds,
        added: r.added,
        again_seconds,
    })
}
