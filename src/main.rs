//! The command line: one subcommand per job, each a thin layer over the library.

mod commands;
mod survey_commands;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use lens_inspect::cutout::Band;
use lens_inspect::model::net::Arch;
use lens_inspect::project::ingest::{ingest, IngestOptions};
use lens_inspect::project::{Project, Role};
use lens_inspect::render::{self, DisplaySettings, Limits, StretchFn};
use lens_inspect::sim::{Look, LookMix, SimConfig, Simulator};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lens-inspect",
    version,
    about = "Grade candidate strong gravitational lenses in survey cutouts, and retrain the lens finder on the grades."
)]
struct Cli {
    /// More messages: -v what the program does, -vv debugging detail, -vvv everything (the
    /// window system's and the network library's too). RUST_LOG, when set, decides instead.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Instruction sets this process may use: `avx2` makes an AVX-512 machine look like an AVX2
    /// desktop to every library (for profiling the path most inspectors' machines take; Linux,
    /// CPUs with CPUID faulting). Default: LENS_INSPECT_CPU, else native.
    #[arg(long, global = true, value_enum)]
    cpu: Option<lens_inspect::cpu_limit::CpuLevel>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Messages go to stderr through `log` (ours, eframe's, burn's, cfitsio wrappers'), at the level
/// -v/-q ask for; RUST_LOG (e.g. `RUST_LOG=lens_inspect=debug,eframe=info`) overrides it.
fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "lens_inspect=info,warn",
        (false, 2) => "lens_inspect=debug,info",
        _ => "trace",
    };
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp_millis()
        .try_init();
}

#[derive(Subcommand)]
enum Command {
    /// Open the desktop app on a project (with no subcommand at all: on the demo project).
    Gui {
        /// Project file (or a session pack).
        #[arg(long)]
        project: Option<PathBuf>,
        /// Go straight to grading as this inspector (skips the start screen).
        #[arg(long)]
        inspector: Option<String>,
        /// Role --inspector asks for (a researcher must have been granted it).
        #[arg(long, value_enum, default_value = "volunteer")]
        role: RoleArg,
        /// With a researcher: open the review view first.
        #[arg(long)]
        review: bool,
        /// With --review: which tab to show first.
        #[arg(long, value_enum, default_value = "table")]
        review_tab: TabArg,
    },
    /// Read survey cutouts into a project (created if missing).
    ///
    /// INPUT is one of: a Bologna Lens Challenge folder (Band1..Band4 holding
    /// imageSDSS_<B>-<ID>.fits), a folder of FITS files with one object each (4 image HDUs, or a
    /// 4 x H x W cube), or a catalogue CSV with `id` and either `u,g,r,i` file paths or one `path`
    /// (optional `ra,dec,tile` and extra columns, kept as metadata). Objects that cannot be read
    /// are listed with the reason; the rest are ingested. Exit status 3 when some were skipped.
    Ingest {
        /// Folder or catalogue CSV to read.
        input: PathBuf,
        /// Project file (SQLite); created when it does not exist.
        #[arg(long)]
        project: PathBuf,
        /// Truth CSV as the challenge gives it: `ID,is_lens,...` (extra columns kept).
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Mark these objects as training candidates (known truth, used to measure inspectors'
        /// skill); requires --truth.
        #[arg(long, requires = "truth")]
        training: bool,
        /// Copy the pixels into the project file so it no longer needs the input files.
        #[arg(long)]
        store_pixels: bool,
        /// Arcseconds per pixel of every object (kept with each candidate), over what their headers say: for files without a
        /// WCS (taken at the model's 0.2" otherwise) or with a wrong one. Cutouts more than 5 %
        /// off the model's scale are resampled to it (docs/survey.md).
        #[arg(long, value_parser = arcsec_per_pixel, allow_hyphen_values = true)]
        pixel_scale: Option<f64>,
        /// Read objects with a band of no valid pixel (all NaN/Inf: a survey mask in one filter)
        /// with that band as sky, instead of skipping them; the app and `explain` say so.
        #[arg(long)]
        keep_blank_bands: bool,
        /// Print the summary as one JSON object (keys: ingested, skipped, errors, ...).
        #[arg(long)]
        json: bool,
    },
    /// Cut survey tiles into 4-band cutouts around catalogue sources, with their WCS.
    ///
    /// TILES holds one file per band and tile (KiDS: KiDS_DR4.0_<RA>_<DEC>_<band>_sci.fits, with
    /// _wei weights and _msk masks beside them); every band is placed through its own TAN WCS.
    /// Only the rows a cutout needs are read, tiles are cut in parallel. Each selected source gets
    /// a manifest row: where it was cut, or why not (in no tile, tile unusable, touches the edge,
    /// low coverage). Exit status 3 when some were rejected or a tile was unusable.
    Cutouts(survey_commands::CutoutsArgs),
    /// Draw one candidate as a PNG (north up): the Lupton colour composite, or one band.
    Render {
        /// Project file.
        #[arg(long)]
        project: PathBuf,
        /// Candidate name (its ID as the input gave it).
        #[arg(long)]
        candidate: String,
        /// Output PNG.
        #[arg(long)]
        out: PathBuf,
        /// Lupton softening Q (astropy's `Q`).
        #[arg(long, default_value_t = DisplaySettings::default().q)]
        q: f32,
        /// Lupton stretch, in units of the survey's r-band sky noise (the linear range of the
        /// asinh mapping).
        #[arg(long, default_value_t = DisplaySettings::default().stretch)]
        stretch: f32,
        /// Black level, in units of the survey's r-band sky noise.
        #[arg(long, default_value_t = DisplaySettings::default().minimum)]
        minimum: f32,
        /// Weights of the i, r, g bands (red, green, blue), e.g. 0.4,0.6,1.7.
        #[arg(long, value_delimiter = ',')]
        weights: Option<Vec<f32>>,
        /// Draw this band alone in grey instead of the colour composite.
        #[arg(long)]
        band: Option<BandArg>,
        /// Stretch of the single-band view.
        #[arg(long, default_value = "asinh")]
        band_stretch: StretchArg,
        /// Limits of the single-band view: zscale, minmax, or two percentiles like 0.5,99.5.
        #[arg(long, default_value = "zscale")]
        limits: String,
        /// Print what was written as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Simulate KiDS-like lenses and look-alikes, written in the Bologna challenge layout.
    ///
    /// Writes OUT/Band1..Band4 (imageSDSS_<B>-<ID>.fits, IDs from 100000), OUT/classifications.csv
    /// (the challenge's truth columns, then kind, Einstein radius, source magnitude, arc S/N in g,
    /// magnification) and OUT/masks/ (where the lensed light is). Deterministic per seed whatever
    /// the number of threads; `ingest OUT --truth OUT/classifications.csv` reads it back.
    Simulate {
        /// Number of cutouts.
        #[arg(long)]
        n: usize,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
        /// Output folder (created).
        #[arg(long)]
        out: PathBuf,
        /// Random seed: the same seed gives byte-identical files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Share of lenses among the cutouts.
        #[arg(long, default_value_t = 0.5)]
        lens_fraction: f64,
        /// Magnitude zero point of the pixel values (KiDS DR4: 0; counts: e.g. 30).
        #[arg(long, default_value_t = 0.0)]
        zero_point: f64,
        /// Also write a labelled grid of the first (up to 100) composites to this PNG.
        #[arg(long)]
        contact_sheet: Option<PathBuf>,
        /// Lupton stretch of the contact sheet, in units of the r-band sky noise.
        #[arg(long, default_value_t = DisplaySettings::default().stretch)]
        stretch: f32,
        /// Weights of the i, r, g bands in the contact sheet.
        #[arg(long, value_delimiter = ',')]
        weights: Option<Vec<f32>>,
        /// Another survey's look, for domain-shift experiments: seeing FWHM in arcsec per band
        /// u,g,r,i (default 1.0,0.85,0.7,0.85, KiDS-like).
        #[arg(long, value_delimiter = ',')]
        fwhm: Option<Vec<f64>>,
        /// Shifts every band's 5-sigma depth by this many magnitudes (negative = shallower).
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
        depth_offset: f64,
        /// Lenses are kept only if their lensed images reach this S/N in g (default 40).
        #[arg(long)]
        min_arc_snr: Option<f64>,
        /// Unlensed source r-magnitude range, e.g. 21,25.5 (default 20.5,24.5).
        #[arg(long, value_delimiter = ',')]
        source_mag: Option<Vec<f64>>,
        /// Added to the lensed sources' colours u-r,g-r,r-i (e.g. 1.5,0.9,0.4: redder sources).
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        source_colour_shift: Option<Vec<f64>>,
        /// Another survey's pixels: arcsec per pixel (KiDS: 0.2; HSC 0.168, DES 0.263). At any
        /// other scale than 0.2 the files get a TAN WCS that says it, as survey cutouts do.
        #[arg(long, default_value_t = 0.2)]
        pixel_scale: f64,
        /// Cutout size in pixels (square).
        #[arg(long, default_value_t = 101)]
        size: usize,
        /// Which nuisance ranges to draw from: randomised (training's domain randomisation,
        /// artefacts included), kids (the narrow KiDS-like look of the demo), or a stress set
        /// (one nuisance outside training's range). docs/robustness.md lists every range.
        #[arg(long, value_enum, default_value = "randomised")]
        look: Look,
    },
    /// Train (or fine-tune) a lens finder on labelled cutouts.
    ///
    /// DATA is a folder `ingest` can read, with its truth in DATA/classifications.csv (as
    /// `simulate` writes it) or --truth. Preprocessing per band: median subtracted, divided by the
    /// robust sky sigma, clipped. Augmentation (--augment): 90-degree and free rotations, flips,
    /// zoom up to x1.5, shifts, noise. Adam; validation each epoch; stops early when the validation loss stops
    /// improving and keeps the best epoch. The model card (beside the model as JSON) records this
    /// command.
    Train {
        /// Labelled training data (with --simulate: mixed in by --data-share).
        #[arg(long, required_unless_present = "simulate")]
        data: Option<PathBuf>,
        /// Train on fresh simulations made while training (never the same cutout twice), on
        /// worker threads; validation is a fixed simulated set (--val-n) unless --val-data.
        #[arg(long)]
        simulate: bool,
        /// With --simulate: the simulator's look, or several in shares (`randomised:0.8,kids:0.2`;
        /// looks as for `simulate --look`). The fixed validation set is drawn from the same mixture.
        #[arg(long, default_value = "randomised")]
        look: LookMix,
        /// With --simulate and --data: share of each batch taken from DATA.
        #[arg(long, default_value_t = 0.0)]
        data_share: f64,
        /// With --simulate: size of the fixed simulated validation set.
        #[arg(long, default_value_t = 2000)]
        val_n: usize,
        /// With --simulate: simulator threads (default: 1).
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// With --simulate: draw a kind of look-alike this many times as often in training
        /// batches (`ring_galaxy=2`; repeatable; kinds as in the truth's `kind` column). The
        /// validation set keeps the look's own shares, so epochs stay comparable across runs.
        #[arg(long, value_name = "KIND=FACTOR", value_parser = parse_boost, requires = "simulate")]
        boost: Vec<(lens_inspect::sim::Kind, f64)>,
        /// Learn from this model's scores as well as (or instead of) the labels: each training
        /// target becomes (1 - W) label + W P_teacher, P averaged over --teacher-views
        /// symmetries of the square (distillation; docs/robustness.md, section 6). Validation
        /// keeps the true labels.
        #[arg(long, value_name = "MODEL")]
        teacher: Option<PathBuf>,
        /// With --teacher: views of the square its scores are averaged over (1 - 8).
        #[arg(long, default_value_t = 8, requires = "teacher")]
        teacher_views: usize,
        /// With --teacher: its share W of each training target (0 - 1; 1 ignores the labels).
        #[arg(long, default_value_t = 1.0, requires = "teacher")]
        teacher_weight: f64,
        /// Half of every batch from DATA's lenses and half from the rest, drawn with
        /// replacement: for a folder where lenses are rare (with --unlabelled: those the teacher
        /// calls lenses). Not with --simulate.
        #[arg(long, conflicts_with = "simulate")]
        balance: bool,
        /// DATA has no truth file: its cutouts are labelled by --teacher's scores (needs
        /// --teacher-weight 1). For adapting a model to a survey's own images, which nobody has
        /// labelled: the student learns the teacher's 8-view average on them in one view.
        #[arg(long, requires = "teacher")]
        unlabelled: bool,
        /// Continue a stopped run from OUT's resume file (OUT with .resume.lensmodel), which
        /// every epoch writes; the same command line with --resume picks up where it stopped.
        #[arg(long)]
        resume: bool,
        /// Learning rate falls along a half cosine to 1/100 over --epochs.
        #[arg(long)]
        cosine_lr: bool,
        /// Print the outcome (model file, best epoch, its validation AUROC and loss, epochs run)
        /// as one JSON object on stdout; the training log stays on stderr.
        #[arg(long)]
        json: bool,
        /// Truth CSV for --data (default: DATA/classifications.csv).
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Labelled validation data (default: hold out --val-fraction of DATA).
        #[arg(long)]
        val_data: Option<PathBuf>,
        /// Share of DATA held out for validation when --val-data is not given.
        #[arg(long, default_value_t = 0.1)]
        val_fraction: f64,
        /// Output model file (.lensmodel); its card is written beside it as .json.
        #[arg(long)]
        out: PathBuf,
        /// Network: lens-detector (CNN + self-attention) or cnn.
        #[arg(long, default_value = "lens-detector")]
        arch: ArchArg,
        /// Most epochs to train.
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// Cutouts per batch.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Adam learning rate.
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        /// Seed for weights, data order and augmentation.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop after this many epochs without a better validation loss.
        #[arg(long, default_value_t = 3)]
        patience: usize,
        /// Batches per epoch (default: one pass over the data).
        #[arg(long)]
        steps_per_epoch: Option<usize>,
        /// Start from this model (transfer learning / fine-tuning).
        #[arg(long)]
        init: Option<PathBuf>,
        /// With --init: train only the attention and head, keep the convolutions.
        #[arg(long, requires = "init")]
        freeze_backbone: bool,
        /// Augmentation of each training cutout: `full` (90-degree and free rotations, flips,
        /// zoom up to x1.5, shifts, added noise: for a fixed folder seen many times), `dihedral`
        /// (90-degree turns and flips only, no resampling: fresh simulations already vary
        /// orientation, size and PSF, and interpolating them would smooth their noise), or
        /// `none`. Default: `dihedral` with --simulate, `full` otherwise (docs/robustness.md
        /// measures the two).
        #[arg(long, value_enum)]
        augment: Option<AugmentArg>,
        /// Share of training cutouts (0-1) shown without colour: every band replaced by one
        /// random mix of the four, so the network must also find arcs by shape, whatever their
        /// colour (docs/robustness.md). 0: off.
        #[arg(long, default_value_t = 0.0, value_parser = share_in_unit_interval)]
        colour_drop: f32,
        /// Largest depth each band loses, in magnitudes (0-3): every band of every training
        /// cutout is made shallower by its own random amount up to this, with the sky noise
        /// kept, so the finder does not lean on one survey's depth ratios between bands. 0: off.
        #[arg(long, default_value_t = 0.0, value_parser = magnitudes_up_to_3)]
        band_depth_jitter: f32,
        /// Compress input values beyond this many robust sigmas (logarithmically) instead of
        /// only clipping them at 50, so bright galaxy cores keep their shape (docs/robustness.md).
        /// Recorded in the model card. 0: the hard clip alone. Default: the --init model's (or
        /// the resumed run's), else 0.
        #[arg(long, value_parser = knee_in_sigmas)]
        knee_sigma: Option<f32>,
        /// Arcseconds per pixel of every cutout of --data and --val-data, over what their headers say: for files without a
        /// WCS (taken at the model's 0.2" otherwise) or with a wrong one. Cutouts more than 5 %
        /// off the model's scale are resampled to it (docs/survey.md).
        #[arg(long, value_parser = arcsec_per_pixel, allow_hyphen_values = true)]
        pixel_scale: Option<f64>,
        /// Read objects with a band of no valid pixel (all NaN/Inf: a survey mask in one filter)
        /// with that band as sky, instead of skipping them; the app and `explain` say so.
        #[arg(long)]
        keep_blank_bands: bool,
        /// A note kept in the model card, e.g. the commands that made the data.
        #[arg(long)]
        note: Option<String>,
    },
    /// Score every candidate of a project with a model; scores are stored as a new model version.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Score {
        #[command(subcommand)]
        what: Option<ScoreWhat>,
        /// Project file.
        #[arg(long, required = true)]
        project: Option<PathBuf>,
        /// Model file (default: the shipped model, built into the program).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Cutouts per inference batch.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Test-time augmentation: average this many of the 8 rotations and flips (default: the
        /// model card's; each view costs one more pass, docs/robustness.md section 6).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=8))]
        tta: Option<u8>,
        /// Score only shard K of N (1-based; a candidate's shard is a hash of its name) into
        /// --shard-out, leaving the project untouched: one job of a cluster array
        /// (scripts/score_slurm.sh). Fold the files in with `score merge`.
        #[arg(long, requires = "shard_out")]
        shard: Option<String>,
        /// The shard's predictions file (JSON).
        #[arg(long, requires = "shard")]
        shard_out: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Challenge metrics of a model: AUROC, TPR0, TPR10 (Metcalf et al. 2019).
    Evaluate {
        /// Model file (default: the shipped model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Labelled folder to score (with DATA/classifications.csv or --truth).
        #[arg(long, conflicts_with = "project")]
        data: Option<PathBuf>,
        /// Truth CSV for --data.
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Arcseconds per pixel of every cutout of --data, over what their headers say: for files without a
        /// WCS (taken at the model's 0.2" otherwise) or with a wrong one. Cutouts more than 5 %
        /// off the model's scale are resampled to it (docs/survey.md).
        #[arg(long, value_parser = arcsec_per_pixel, allow_hyphen_values = true)]
        pixel_scale: Option<f64>,
        /// Read objects with a band of no valid pixel (all NaN/Inf: a survey mask in one filter)
        /// with that band as sky, instead of skipping them; the app and `explain` say so.
        #[arg(long, conflicts_with = "project")]
        keep_blank_bands: bool,
        /// Or: the candidates with truth in a project (using the model's latest stored scores).
        #[arg(long)]
        project: Option<PathBuf>,
        /// Write the ROC curve (threshold, fpr, tpr, false and true positives) as CSV.
        #[arg(long)]
        roc: Option<PathBuf>,
        /// With --data: write every cutout's score as CSV (name, is_lens, score; best first), to
        /// look at the misses and the false positives (a project's are in `export`).
        #[arg(long, requires = "data")]
        scores: Option<PathBuf>,
        /// Print one JSON object with keys auroc, tpr0, tpr10, n, n_lens.
        #[arg(long)]
        json: bool,
        /// Also measure where Grad-CAM looks on up to this many lenses of --data that have a
        /// lensed-light mask (DATA/masks/mask-<ID>.fits, as `simulate` writes): the share of the
        /// map inside the mask over the mask's share of the image (1 = no preference).
        #[arg(long)]
        gradcam_check: Option<usize>,
        /// Rates per group of any truth column (e.g. kind, ring_recipe, artefacts; numbers in
        /// 5 quantile bins): lenses found and false positives at the threshold that keeps half
        /// of the lenses and at P > 0.5, and AUROC of the group against the other class.
        #[arg(long)]
        by: Vec<String>,
        /// Bootstrap resamples for the 95 % intervals (0: none).
        #[arg(long, default_value_t = 1000)]
        bootstrap: usize,
        /// Test-time augmentation: views of the 8 rotations and flips to average (default: the
        /// model card's).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=8))]
        tta: Option<u8>,
    },
    /// The stress suite: the model on its in-domain test set, the KiDS look and every stress set
    /// (one nuisance outside training's ranges), with 95 % intervals and per-kind rates.
    EvaluateSuite {
        /// Model file (default: the shipped model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Folder for the test sets (made once per --n and --seed, then reused).
        #[arg(long, default_value = "data/robustness")]
        dir: PathBuf,
        /// Cutouts per set.
        #[arg(long, default_value_t = 2000)]
        n: usize,
        /// Seed of the first set (the k-th set uses seed + k).
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Test-time augmentation views (default: the model card's).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=8))]
        tta: Option<u8>,
        /// Write the results into the model file's card (and the JSON beside it).
        #[arg(long)]
        card: bool,
        /// Print the results as one JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Adapt a model to a survey's own images, without labels: the model averaged over the 8
    /// turns and flips labels the folder, and a copy of it learns to give that average in one
    /// view. Score the survey with OUT afterwards. Measured on other simulators' images
    /// (docs/robustness.md, section 6): it gained where about a quarter or more of the adapted
    /// images were lenses and lost where 2 % were, so it warns on folders with few; on a survey,
    /// give --top K to adapt on the K candidates it ranks highest and K others, and --project to
    /// read only those from a project.
    Adapt {
        /// The survey's cutouts (any layout `ingest` reads; no truth file needed). Read whole,
        /// about 165 KB per cutout: for a large survey, use --project.
        #[arg(long, required_unless_present = "project", conflicts_with = "project")]
        data: Option<PathBuf>,
        /// A project: adapt on its survey candidates (not its training ones). With --top, the
        /// ones its latest scores rank highest and a random sample of the rest, and only those
        /// have their pixels read: memory follows the candidates chosen, not the survey's size.
        /// Score the project first, and again with OUT afterwards (`score --project P --model
        /// OUT`).
        #[arg(long)]
        project: Option<PathBuf>,
        /// The model to adapt, which is also the teacher (default: the shipped model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Output model file (.lensmodel); its card, beside it, records the teacher and the data.
        #[arg(long)]
        out: PathBuf,
        /// Passes over the folder (10 gained on the sets measured; the held-out 10 % picks the
        /// epoch closest to the teacher's average).
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// Peak learning rate, falling along a half cosine (small: the model is already trained).
        #[arg(long, default_value_t = 1e-4)]
        lr: f64,
        /// Seed for the held-out split, the order and the turns and flips.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Arcseconds per pixel of every cutout, over what their headers say (a project keeps
        /// the scale it was ingested with).
        #[arg(long, value_parser = arcsec_per_pixel, allow_hyphen_values = true, conflicts_with = "project")]
        pixel_scale: Option<f64>,
        /// Keep cutouts with a band of no valid pixel, that band read as sky (a project keeps
        /// what it was ingested with).
        #[arg(long, conflicts_with = "project")]
        keep_blank_bands: bool,
        /// Half of every batch from the cutouts the model calls lenses, half from the rest
        /// (docs/robustness.md, section 6, measures it on a folder with 2 % lenses).
        #[arg(long)]
        balance: bool,
        /// Adapt on only the K cutouts the model's 8 views rank highest (with --project: its
        /// stored scores): a survey's candidates, where its lenses gather. Adapting on the top
        /// 2,000 of 20,000 (5 % lenses) gained where adapting on a whole folder with 2 % lost
        /// (docs/robustness.md, section 6).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        top: Option<u64>,
        /// With --top: this many more cutouts drawn at random from the rest (seeded by --seed),
        /// so the survey's ordinary look is taught too; as many as --top unless given (0: the
        /// top alone). Top 2,000 and 2,000 random gained +0.012 AUROC over the top 2,000 alone
        /// where measured (docs/robustness.md, section 6).
        #[arg(long, requires = "top")]
        sample: Option<u64>,
        /// Continue a stopped run from OUT's resume file.
        #[arg(long)]
        resume: bool,
        /// Print the outcome as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Join models into one file whose probabilities are averaged (an ensemble). Scoring costs
    /// one model's time per member; docs/robustness.md measures what it buys. Maps and
    /// retraining use the first member.
    Ensemble {
        /// Model files (ensembles are taken apart into their members), all of one architecture.
        #[arg(required = true, num_args = 2..)]
        models: Vec<PathBuf>,
        /// Output model file.
        #[arg(long)]
        out: PathBuf,
        /// Test-time augmentation views the ensemble scores with (default: the first model's).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=8))]
        tta: Option<u8>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Draw where the model looks (Grad-CAM or occlusion) over a candidate's composite, as PNG.
    Explain {
        /// Project file.
        #[arg(long)]
        project: PathBuf,
        /// Candidate name.
        #[arg(long)]
        candidate: String,
        /// Output PNG (north up).
        #[arg(long)]
        out: PathBuf,
        /// Model file (default: the shipped model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// evidence (signed: warm for lens, blue against, fixed scale of 0.5 logit per feature
        /// cell), occlusion (signed, model-agnostic, 2 logits full scale, about 1 s) or gradcam
        /// (positive only, scaled to its own maximum).
        #[arg(long, value_enum, default_value = "evidence")]
        method: MethodArg,
        /// Opacity of the map over the composite.
        #[arg(long, default_value_t = 0.7)]
        opacity: f32,
        /// Print what was written (file, P(lens), map) as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The candidate catalogue (CSV, or a FITS binary table for TOPCAT), or the raw grade log.
    ///
    /// Columns: name, ra, dec, tile, model_score, model_version, n_grades, mean_grade, n0, n1, n3,
    /// n5, swap_posterior, swap_status, seed_rule, disputed, blank_bands (the bands the survey left
    /// without an image, e.g. "u"). Training candidates are left out.
    #[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["out", "regions", "cutouts", "zooniverse"])))]
    Export {
        /// Project file.
        #[arg(long)]
        project: PathBuf,
        /// Catalogue file: .csv (booleans as true/false) or .fits (units, logical columns,
        /// RADESYS and provenance keys: program, model, consensus rule, SWAP prior and thresholds).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Which candidates: all, graded, seed-rule (2 x "maybe" or 1 x "sure"), detected (SWAP).
        #[arg(long, value_enum, default_value = "all")]
        min_verdict: MinVerdictArg,
        /// Write every grade event instead (uid, candidate, inspector, score, time, session,
        /// comment, points) as CSV.
        #[arg(long, requires = "out")]
        grades: bool,
        /// Write the points inspectors marked as ds9 region files, one per candidate, into this
        /// folder.
        #[arg(long)]
        regions: Option<PathBuf>,
        /// Coordinates of --regions: fk5 (RA/Dec through the candidate's WCS; pixels where it has
        /// none) or image (1-based pixels).
        #[arg(long, value_enum, default_value = "fk5")]
        frame: FrameArg,
        /// Write the catalogue's candidates (--min-verdict) as 4-plane FITS cubes (u, g, r, i)
        /// with their WCS into this folder.
        #[arg(long)]
        cutouts: Option<PathBuf>,
        /// Write every candidate as a Zooniverse subject set into this folder: a PNG composite
        /// each and manifest.csv (hidden #name, #ra, #dec, #training_subject, #is_lens) for the
        /// Panoptes uploader. Classifications come back with `grades import --zooniverse`.
        #[arg(long)]
        zooniverse: Option<PathBuf>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Grades kept in files.
    Grades {
        #[command(subcommand)]
        what: GradesWhat,
    },
    /// Print a shell completion script, e.g. `lens-inspect completions bash > ~/.local/share/bash-completion/completions/lens-inspect`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Who grades in a project, and who is a researcher.
    Inspectors {
        #[command(subcommand)]
        what: InspectorsWhat,
    },
    /// Session packs for grading offline.
    Pack {
        #[command(subcommand)]
        what: PackWhat,
    },
    /// Fine-tune the project's model on the labels its grades give, keep it only if it is not
    /// worse on labels it never saw, and store it with its scores of every candidate, in one step.
    ///
    /// Labels: the seed rule's lenses -> lens; candidates every one of at least two inspectors
    /// called 0 or 1 -> not; training candidates their truth. They are split three ways: 55 % to
    /// train (hard negatives, high score but people said no, twice), 20 % to pick the best epoch,
    /// 25 % to decide keep or reject. A share of fresh simulations keeps the model from
    /// forgetting; simulations neither model saw are reported beside the decision.
    Retrain {
        /// Project file.
        #[arg(long)]
        project: PathBuf,
        /// Starting model (default: the project's current model, else the shipped one).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Epochs of fine-tuning.
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        /// Learning rate.
        #[arg(long, default_value_t = 3e-4)]
        lr: f64,
        /// What learns: head (attention and classifier), top-stage (also the last conv stage,
        /// the default), or all.
        #[arg(long, value_enum, default_value = "top-stage")]
        trainable: TrainableArg,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the outcome (labels, losses, AUROCs, kept or not) as one JSON object, without
        /// the progress bar.
        #[arg(long)]
        json: bool,
    },
    /// Project housekeeping.
    Project {
        #[command(subcommand)]
        what: ProjectWhat,
    },
    /// Counts of candidates, inspectors, grades and models in a project.
    Info {
        /// Project file.
        #[arg(long)]
        project: PathBuf,
        /// Print as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Measure speed (writes its own data in a temporary folder).
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
enum GradesWhat {
    /// Import grades from CSV: `candidate,inspector,score,time[,comment]` (time ISO 8601), or a
    /// labelling script's `ID,LABEL` (0 = not a lens, 1 = lens, stored as 5) with --inspector.
    /// Bad rows are listed and skipped; importing the same file twice adds nothing.
    Import {
        /// The CSV file.
        csv: PathBuf,
        /// Project file.
        #[arg(long)]
        project: PathBuf,
        /// Inspector for files without an inspector column.
        #[arg(long, conflicts_with = "zooniverse")]
        inspector: Option<String>,
        /// CSV is a Zooniverse (Panoptes) classifications export: user_name is the inspector,
        /// created_at the time, the answer becomes a grade by --answers. Idempotent (by
        /// classification_id).
        #[arg(long, requires = "answers")]
        zooniverse: bool,
        /// With --zooniverse: answer -> grade, e.g. 'Yes=5,No=0' (labels, or indices '1=5,0=0').
        #[arg(long, requires = "zooniverse")]
        answers: Option<String>,
        /// With --zooniverse: the question task to read (default: each classification's first).
        #[arg(long, requires = "zooniverse")]
        task: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum InspectorsWhat {
    /// Add an inspector, or change their role. Researchers see model scores and everyone's
    /// grades, review and retrain; a name typed at the start screen is a volunteer.
    Add {
        /// The inspector's name, as they type it at the start screen.
        name: String,
        /// Project file.
        #[arg(long)]
        project: PathBuf,
        #[arg(long, value_enum, default_value = "volunteer")]
        role: RoleArg,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the inspectors with their roles and grade counts.
    List {
        /// Project file.
        #[arg(long)]
        project: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum TabArg {
    Table,
    Gallery,
    Dashboard,
}

#[derive(Clone, Copy, ValueEnum)]
enum MinVerdictArg {
    All,
    Graded,
    SeedRule,
    Detected,
}

#[derive(Clone, Copy, ValueEnum)]
enum TrainableArg {
    Head,
    TopStage,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Volunteer,
    Researcher,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Volunteer => Role::Volunteer,
            RoleArg::Researcher => Role::Researcher,
        }
    }
}

#[derive(Subcommand)]
enum PackWhat {
    /// Write a pack: candidates with their pixels, display settings, optionally scores.
    Export {
        /// Project file.
        #[arg(long)]
        project: PathBuf,
        /// Output pack file.
        #[arg(long)]
        out: PathBuf,
        /// Inspector the pack is for: their already graded candidates are left out, and merging
        /// accepts grades by them only.
        #[arg(long)]
        inspector: String,
        /// How many candidates (highest model score first, else in ingest order).
        #[arg(long)]
        n: Option<usize>,
        /// Only candidates whose name contains this text.
        #[arg(long)]
        query: Option<String>,
        /// Include the model's latest scores.
        #[arg(long)]
        with_scores: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Bring the grades of packs back into the project (idempotent; refuses damaged, altered or
    /// foreign packs without writing anything).
    Merge {
        /// Pack files.
        #[arg(required = true)]
        packs: Vec<PathBuf>,
        /// Project file.
        #[arg(long)]
        project: PathBuf,
        /// Print one JSON object per pack.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ProjectWhat {
    /// The data moved: rewrite every candidate file path under FROM to lie under TO (paths are
    /// stored absolute at ingest). Says how many candidates changed and how many now find their
    /// files.
    Relocate {
        #[arg(long)]
        project: PathBuf,
        /// The folder the files were in (as the project remembers it).
        #[arg(long)]
        from: PathBuf,
        /// The folder they are in now.
        #[arg(long)]
        to: PathBuf,
        /// Only say what would change.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ScoreWhat {
    /// Fold shard files from `score --shard` into the project: shards of one model land in one
    /// model version; merging a file twice changes nothing. Says which shards are still missing.
    Merge {
        /// Shard files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Project file.
        #[arg(long)]
        project: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
enum BenchWhat {
    /// Cutouts per second through `ingest` (4 band files each, warm cache). With --astropy, also
    /// runs benches/ingest_astropy.py on the same files, interleaved: the notebook way (astropy
    /// reads, WCS, sky sigma, SQLite rows) and reads alone (`astropy_pixels_only_*`).
    Ingest {
        /// Number of cutouts to write and ingest.
        #[arg(long, default_value_t = 2000)]
        n: usize,
        /// Folder for the data (default: a temporary folder, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// A Python with astropy installed.
        #[arg(long)]
        astropy: Option<PathBuf>,
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/ingest_astropy.py"))]
        astropy_script: PathBuf,
        /// Interleaved runs with --astropy.
        #[arg(long, default_value_t = 2)]
        pairs: usize,
    },
    /// Cutouts per second of the simulator (in memory, and writing files).
    /// With --lenstronomy, also runs benches/simulate_lenstronomy.py (the same kind of four-band
    /// lens made by lenstronomy, single-threaded) and prints the ratio per core.
    Simulate {
        #[arg(long, default_value_t = 2000)]
        n: usize,
        /// A Python with lenstronomy installed.
        #[arg(long)]
        lenstronomy: Option<PathBuf>,
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/simulate_lenstronomy.py"))]
        lenstronomy_script: PathBuf,
        /// Lenses lenstronomy simulates (it makes about 5 per second).
        #[arg(long, default_value_t = 40)]
        lenstronomy_n: usize,
    },
    /// Cutouts per second of the network: inference (batch 64) and training steps (batch 32).
    /// With --torch, also runs benches/torch_reference.py (the same network in PyTorch, CPU,
    /// 2 threads), interleaved, and prints one JSON line per pair with the ratios.
    Model {
        #[arg(long, default_value = "lens-detector")]
        arch: ArchArg,
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// A Python with PyTorch installed (e.g. a venv's bin/python).
        #[arg(long)]
        torch: Option<PathBuf>,
        /// The PyTorch reference script.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_reference.py"))]
        torch_script: PathBuf,
        /// Interleaved pairs of runs with --torch.
        #[arg(long, default_value_t = 3)]
        pairs: usize,
    },
    /// The active-learning experiment: labels each query strategy needs on a (domain-shifted)
    /// pool. Starts from the model, lets a simulated oracle label BATCH candidates per round chosen
    /// by each strategy, fine-tunes (see --tune), and records AUROC / TPR10 on a held-out
    /// part of the pool after each round. Writes OUT.csv (curves), OUT.png (plot), OUT.json.
    ActiveLearning(commands::ActiveLearningArgs),
    /// Cutouts per second of `cutouts` and its peak memory, on TILES survey tiles of SIDE x SIDE
    /// pixels per band (sparse files written first: real headers, zero pixels, no disk used)
    /// with OBJECTS catalogue sources. With --astropy, also runs benches/cutouts_astropy.py
    /// (astropy Cutout2D on memory-mapped tiles, same tiles and catalogue), interleaved.
    Cutouts {
        #[arg(long, default_value_t = 4)]
        tiles: usize,
        #[arg(long, default_value_t = 20_000)]
        side: usize,
        #[arg(long, default_value_t = 4000)]
        objects: usize,
        /// Folder for the data (default: a temporary folder, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// A Python with astropy installed.
        #[arg(long)]
        astropy: Option<PathBuf>,
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/cutouts_astropy.py"))]
        astropy_script: PathBuf,
        /// Interleaved pairs of runs with --astropy.
        #[arg(long, default_value_t = 2)]
        pairs: usize,
    },
    /// Seconds to import a Zooniverse classifications export of N rows (written first), and
    /// again (all already present).
    Zooniverse {
        #[arg(long, default_value_t = 1_000_000)]
        n: usize,
        #[arg(long, default_value_t = 5000)]
        users: usize,
        #[arg(long, default_value_t = 20_000)]
        candidates: usize,
        /// Folder for the data (default: a temporary folder, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Microseconds per Lupton composite of a 101 x 101 cutout.
    Composite {
        #[arg(long, default_value_t = 20000)]
        iterations: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FrameArg {
    Fk5,
    Image,
}

#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    Evidence,
    Occlusion,
    Gradcam,
}

#[derive(Clone, Copy, ValueEnum)]
enum ArchArg {
    LensDetector,
    Cnn,
}

impl From<ArchArg> for Arch {
    fn from(a: ArchArg) -> Arch {
        match a {
            ArchArg::LensDetector => Arch::LensDetector,
            ArchArg::Cnn => Arch::Cnn,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum AugmentArg {
    /// Rotations (90-degree and free), flips, zoom, shifts, noise (SPEC 5).
    Full,
    /// 90-degree turns and flips only: pixels moved, never resampled.
    Dihedral,
    /// The cutouts as they are.
    None,
}

impl From<AugmentArg> for lens_inspect::model::data::Augment {
    fn from(a: AugmentArg) -> Self {
        use lens_inspect::model::data::Augment;
        match a {
            AugmentArg::Full => Augment::default(),
            AugmentArg::Dihedral => Augment::dihedral_only(),
            AugmentArg::None => Augment::none(),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum BandArg {
    U,
    G,
    R,
    I,
}

impl From<BandArg> for Band {
    fn from(b: BandArg) -> Band {
        match b {
            BandArg::U => Band::U,
            BandArg::G => Band::G,
            BandArg::R => Band::R,
            BandArg::I => Band::I,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum StretchArg {
    Linear,
    Sqrt,
    Log,
    Asinh,
}

impl From<StretchArg> for StretchFn {
    fn from(s: StretchArg) -> StretchFn {
        match s {
            StretchArg::Linear => StretchFn::Linear,
            StretchArg::Sqrt => StretchFn::Sqrt,
            StretchArg::Log => StretchFn::Log,
            StretchArg::Asinh => StretchFn::Asinh,
        }
    }
}

fn parse_limits(text: &str) -> Result<Limits> {
    match text.to_ascii_lowercase().as_str() {
        "zscale" => Ok(Limits::ZScale),
        "minmax" => Ok(Limits::MinMax),
        other => {
            let parts: Vec<&str> = other.split(',').collect();
            if let [lo, hi] = parts[..] {
                let lo: f32 = lo.trim().parse().with_context(|| format!("--limits: {lo:?} is not a percentile"))?;
                let hi: f32 = hi.trim().parse().with_context(|| format!("--limits: {hi:?} is not a percentile"))?;
                if (0.0..hi).contains(&lo) && hi <= 100.0 {
                    return Ok(Limits::Percentile(lo, hi));
                }
            }
            bail!("--limits {text:?}: expected zscale, minmax, or two percentiles LO,HI with 0 <= LO < HI <= 100")
        }
    }
}

fn parse_weights(w: &[f32]) -> Result<[f32; 3]> {
    match w {
        [i, r, g] if w.iter().all(|v| v.is_finite() && *v >= 0.0) => Ok([*i, *r, *g]),
        _ => bail!("--weights takes three non-negative numbers for i, r, g, e.g. 0.4,0.6,1.7"),
    }
}

/// A progress bar on stderr when it is a terminal; hidden otherwise (pipes, CI, --json).
pub(crate) fn progress_bar(visible: bool) -> indicatif::ProgressBar {
    if !visible {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    // First, before any library reads the CPU's features (they are cached) or starts a thread.
    let level = match cli.cpu {
        Some(level) => Some(level),
        None => lens_inspect::cpu_limit::level_from_env()?,
    };
    if let Some(level) = level {
        lens_inspect::cpu_limit::apply(level)?;
    }
    init_logging(cli.verbose, cli.quiet);
    log::info!("lens-inspect {} started", env!("CARGO_PKG_VERSION"));
    let Some(command) = cli.command else {
        lens_inspect::app::run(None)?;
        return Ok(ExitCode::SUCCESS);
    };
    match command {
        Command::Gui { project, inspector, role, review, review_tab } => {
            use lens_inspect::app::review::Mode;
            let tab = match review_tab {
                TabArg::Table => Mode::Table,
                TabArg::Gallery => Mode::Gallery,
                TabArg::Dashboard => Mode::Dashboard,
            };
            if let Some(p) = &project {
                // Fail here, with a clear message, rather than inside the window.
                Project::open_existing(p)?;
            }
            let role = Role::from(role);
            let direct = inspector.map(|name| lens_inspect::app::Direct { name, role, review, tab });
            lens_inspect::app::run_with(project, direct)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { input, project, truth, training, store_pixels, pixel_scale, keep_blank_bands, json } => {
            let mut p = Project::create_or_open(&project)?;
            let bar = progress_bar(!json);
            bar.set_message("reading");
            let options = IngestOptions { truth, training, store_pixels, pixel_scale, keep_blank_bands };
            let summary = ingest(&mut p, &input, &options, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!(
                    "{}: found {} objects; ingested {}, already in the project {}, skipped {}",
                    input.display(),
                    summary.found,
                    summary.ingested,
                    summary.already_present,
                    summary.total_skipped()
                );
                for (reason, count) in &summary.skipped {
                    let names: Vec<&str> =
                        summary.errors.iter().filter(|e| &e.kind == reason).take(3).map(|e| e.name.as_str()).collect();
                    let more = if *count > names.len() { ", ..." } else { "" };
                    println!("  skipped {count} ({reason}): {}{more}", names.join(", "));
                }
                for e in summary.errors.iter().take(20) {
                    eprintln!("  {}: {}", e.name, e.reason);
                }
                if summary.errors.len() > 20 {
                    eprintln!("  ... and {} more (use --json for the full list)", summary.errors.len() - 20);
                }
                if !summary.blank_bands.is_empty() {
                    let per_band: Vec<String> = summary.blank_bands.iter().map(|(b, n)| format!("{b}: {n}")).collect();
                    println!(
                        "blank bands (no image: all masked, or one constant value; read and scored with the \
                         band as sky, and shown as such): {}",
                        per_band.join(", ")
                    );
                }
                if summary.rescaled > 0 {
                    println!(
                        "pixel scale: {} candidates already in the project now taken at {}\"; their stored \
                         scores were made at the old scale: run `lens-inspect score --project {}` again",
                        summary.rescaled,
                        options.pixel_scale.unwrap_or_default(),
                        project.display()
                    );
                }
                if options_truth_given(&summary) {
                    println!(
                        "truth: {} rows matched candidates, {} named no candidate",
                        summary.truth_matched, summary.truth_unmatched
                    );
                }
            }
            Ok(if summary.total_skipped() > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS })
        }
        Command::Cutouts(args) => {
            let bar = progress_bar(!args.json);
            survey_commands::cutouts(args, bar)
        }
        Command::Render { project, candidate, out, q, stretch, minimum, weights, band, band_stretch, limits, json } => {
            let p = Project::open_existing(&project)?;
            let row = p.candidate_by_name(&candidate)?;
            let cutout = p.load_cutout(&row)?;
            let image = match band {
                Some(b) => render::band_image(&cutout, b.into(), band_stretch.into(), parse_limits(&limits)?),
                None => {
                    if !(q.is_finite() && stretch.is_finite() && stretch > 0.0 && minimum.is_finite()) {
                        bail!("--q, --stretch and --minimum must be finite numbers and --stretch positive");
                    }
                    let mut settings = DisplaySettings { q, stretch, minimum, ..DisplaySettings::default() };
                    if let Some(w) = weights {
                        settings.weights = parse_weights(&w)?;
                    }
                    render::composite(&cutout, &settings, p.flux_scale()?)
                }
            };
            render::save_png(&out, &image)?;
            if json {
                let view = band.map(|b| Band::from(b).to_string()).unwrap_or_else(|| "composite".into());
                let line = serde_json::json!({
                    "out": out, "candidate": candidate, "view": view, "width": image.width, "height": image.height,
                });
                println!("{line}");
            } else {
                println!("wrote {} ({}x{})", out.display(), image.width, image.height);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            n,
            json,
            out,
            seed,
            lens_fraction,
            zero_point,
            contact_sheet,
            stretch,
            weights,
            fwhm,
            depth_offset,
            min_arc_snr,
            source_mag,
            source_colour_shift,
            pixel_scale,
            size,
            look,
        } => {
            if !(0.0..=1.0).contains(&lens_fraction) {
                bail!("--lens-fraction must be between 0 and 1, not {lens_fraction}");
            }
            let mut config = SimConfig { lens_fraction, zero_point, ranges: look.ranges(), ..SimConfig::default() };
            if let Some(f) = fwhm {
                // Seeing given per band replaces the look's randomised seeing.
                config.ranges.psf_fwhm_arcsec = None;
                match f.as_slice() {
                    &[u, g, r, i] if f.iter().all(|&v| v > 0.0 && v < 10.0) => config.fwhm_arcsec = [u, g, r, i],
                    _ => bail!("--fwhm needs four seeing values in arcsec (u,g,r,i) between 0 and 10, got {f:?}"),
                }
            }
            if !depth_offset.is_finite() || depth_offset.abs() > 5.0 {
                bail!("--depth-offset must be within +-5 magnitudes, not {depth_offset}");
            }
            for d in &mut config.depth_mag {
                *d += depth_offset;
            }
            if let Some(snr) = min_arc_snr {
                if !(snr >= 0.0 && snr.is_finite()) {
                    bail!("--min-arc-snr must be a non-negative number, not {snr}");
                }
                config.min_arc_snr_g = snr;
                if let Some((_, hi)) = config.ranges.arc_snr_g {
                    config.ranges.arc_snr_g = Some((snr, hi.max(1.5 * snr)));
                }
            }
            if let Some(m) = source_mag {
                match m.as_slice() {
                    &[lo, hi] if lo < hi && lo > 10.0 && hi < 35.0 => config.source_mag_r = (lo, hi),
                    _ => bail!("--source-mag needs two r magnitudes lo,hi with lo < hi, got {m:?}"),
                }
            }
            if let Some(c) = source_colour_shift {
                match c.as_slice() {
                    &[u, g, i] if c.iter().all(|v| v.abs() <= 5.0) => config.source_colour_shift = [u, g, i],
                    _ => bail!("--source-colour-shift needs three colour offsets (u-r,g-r,r-i) within +-5, got {c:?}"),
                }
            }
            if !(0.02..=2.0).contains(&pixel_scale) {
                bail!("--pixel-scale must be between 0.02 and 2 arcsec, not {pixel_scale}");
            }
            if !(16..=1024).contains(&size) {
                bail!("--size must be between 16 and 1024 pixels, not {size}");
            }
            config.pixel_arcsec = pixel_scale;
            config.size = size;
            let sim = Simulator::new(config);
            let bar = progress_bar(!json);
            bar.set_length(n as u64);
            bar.set_message("simulating");
            let summary = lens_inspect::sim::write_run(&sim, n, seed, &out, &|d| bar.set_position(d as u64))
                .with_context(|| format!("writing the simulation to {}", out.display()))?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!(
                    "wrote {} cutouts ({} lenses) to {} in {:.1} s ({:.0} cutouts/s)",
                    summary.written,
                    summary.lenses,
                    out.display(),
                    summary.seconds,
                    summary.cutouts_per_s
                );
            }
            if let Some(sheet) = contact_sheet {
                let mut settings = DisplaySettings { stretch, ..DisplaySettings::default() };
                if let Some(w) = weights {
                    settings.weights = parse_weights(&w)?;
                }
                write_contact_sheet(&sim, n.min(100), seed, &sheet, &settings)?;
                if !json {
                    println!("contact sheet: {}", sheet.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Train {
            data,
            truth,
            val_data,
            val_fraction,
            out,
            arch,
            epochs,
            batch,
            lr,
            seed,
            patience,
            steps_per_epoch,
            init,
            freeze_backbone,
            augment,
            colour_drop,
            band_depth_jitter,
            knee_sigma,
            note,
            simulate,
            look,
            data_share,
            val_n,
            workers,
            boost,
            resume,
            cosine_lr,
            pixel_scale,
            keep_blank_bands,
            json,
            teacher,
            teacher_views,
            teacher_weight,
            unlabelled,
            balance,
        } => {
            let command_line: Vec<String> = std::env::args().collect();
            let config = lens_inspect::model::train::TrainConfig {
                arch: arch.into(),
                epochs,
                batch,
                lr,
                seed,
                patience,
                steps_per_epoch,
                freeze_backbone,
                cosine_lr,
                balance_classes: balance,
                augment: lens_inspect::model::data::Augment {
                    colour_drop,
                    band_depth_jitter_mag: band_depth_jitter,
                    ..augment.unwrap_or(if simulate { AugmentArg::Dihedral } else { AugmentArg::Full }).into()
                },
                ..Default::default()
            };
            let stream = simulate.then_some(commands::StreamArgs { look, data_share, val_n, workers, boost });
            commands::train(commands::TrainArgs {
                stream,
                resume,
                data,
                truth,
                val_data,
                val_fraction,
                out,
                init,
                config,
                command_line,
                note,
                knee_sigma,
                folder: lens_inspect::model::FolderOptions { pixel_scale, keep_blank_bands },
                json,
                teacher: teacher.map(|path| commands::TeacherArgs {
                    path,
                    views: teacher_views,
                    weight: teacher_weight,
                }),
                unlabelled,
                top: None,
                from_project: false,
            })
        }
        Command::Score { what: Some(ScoreWhat::Merge { files, project, json }), .. } => {
            commands::score_merge(&project, &files, json)
        }
        Command::Score { what: None, project, model, batch, tta, shard, shard_out, json } => {
            let project = project.context("--project is required")?;
            match (shard, shard_out) {
                (Some(shard), Some(out)) => {
                    commands::score_shard(&project, model, batch, tta.map(usize::from), &shard, &out, json)
                }
                _ => commands::score(&project, model, batch, tta.map(usize::from), json),
            }
        }
        Command::Evaluate {
            model,
            data,
            truth,
            pixel_scale,
            keep_blank_bands,
            project,
            roc,
            scores,
            json,
            gradcam_check,
            by,
            bootstrap,
            tta,
        } => commands::evaluate(commands::EvaluateArgs {
            model,
            data,
            truth,
            folder: lens_inspect::model::FolderOptions { pixel_scale, keep_blank_bands },
            project,
            roc,
            scores,
            json,
            gradcam_check,
            by,
            bootstrap,
            tta: tta.map(usize::from),
        }),
        Command::EvaluateSuite { model, dir, n, seed, tta, card, json } => {
            commands::evaluate_suite(model, &dir, n, seed, tta.map(usize::from), card, json)
        }
        Command::Adapt {
            data,
            project,
            model,
            out,
            epochs,
            lr,
            seed,
            pixel_scale,
            keep_blank_bands,
            balance,
            top,
            sample,
            resume,
            json,
        } => {
            let top = top.map(|k| (k as usize, sample.unwrap_or(k) as usize));
            let model = model.unwrap_or_else(lens_inspect::model::shipped_model_path);
            // Architecture and preprocessing come from the model itself (train's --init).
            let config = lens_inspect::model::train::TrainConfig {
                epochs,
                batch: 32,
                lr,
                seed,
                patience: epochs,
                augment: lens_inspect::model::data::Augment::dihedral_only(),
                cosine_lr: true,
                balance_classes: balance,
                ..Default::default()
            };
            let from_project = project.is_some();
            commands::train(commands::TrainArgs {
                data: data.or(project),
                truth: None,
                val_data: None,
                val_fraction: 0.1,
                out,
                init: Some(model.clone()),
                config,
                command_line: std::env::args().collect(),
                note: Some(format!(
                    "{} adapted without labels to a survey's images, taught by its own 8-view average",
                    model.display()
                )),
                stream: None,
                resume,
                knee_sigma: None,
                folder: lens_inspect::model::FolderOptions { pixel_scale, keep_blank_bands },
                json,
                teacher: Some(commands::TeacherArgs { path: model, views: 8, weight: 1.0 }),
                unlabelled: true,
                top,
                from_project,
            })
        }
        Command::Ensemble { models, out, tta, json } => commands::ensemble(&models, &out, tta.map(usize::from), json),
        Command::Explain { project, candidate, out, model, method, opacity, json } => {
            let method = match method {
                MethodArg::Evidence => commands::MapKind::Evidence,
                MethodArg::Occlusion => commands::MapKind::Occlusion,
                MethodArg::Gradcam => commands::MapKind::Gradcam,
            };
            commands::explain(&project, &candidate, &out, model, method, opacity, json)
        }
        Command::Export { project, out, min_verdict, grades, regions, frame, cutouts, zooniverse, json } => {
            use lens_inspect::project::export::MinVerdict;
            let min = match min_verdict {
                MinVerdictArg::All => MinVerdict::All,
                MinVerdictArg::Graded => MinVerdict::Graded,
                MinVerdictArg::SeedRule => MinVerdict::SeedRule,
                MinVerdictArg::Detected => MinVerdict::Detected,
            };
            let frame = match frame {
                FrameArg::Fk5 => lens_inspect::project::export_sky::RegionFrame::Fk5,
                FrameArg::Image => lens_inspect::project::export_sky::RegionFrame::Image,
            };
            commands::export(commands::ExportArgs {
                project,
                out,
                min,
                grades,
                regions,
                frame,
                cutouts,
                zooniverse,
                json,
            })
        }
        Command::Grades {
            what: GradesWhat::Import { csv, project, inspector: _, zooniverse: true, answers, task, json },
        } => commands::import_zooniverse(&project, &csv, answers.as_deref().unwrap_or(""), task, json),
        Command::Grades { what: GradesWhat::Import { csv, project, inspector, json, .. } } => {
            commands::import_grades(&project, &csv, inspector.as_deref(), json)
        }
        Command::Pack { what: PackWhat::Export { project, out, inspector, n, query, with_scores, json } } => {
            commands::pack_export(&project, &out, inspector, n, query, with_scores, json)
        }
        Command::Pack { what: PackWhat::Merge { packs, project, json } } => {
            commands::pack_merge(&project, &packs, json)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "lens-inspect", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspectors { what: InspectorsWhat::Add { name, project, role, json } } => {
            commands::inspectors_add(&project, &name, role.into(), json)
        }
        Command::Inspectors { what: InspectorsWhat::List { project, json } } => {
            commands::inspectors_list(&project, json)
        }
        Command::Retrain { project, model, epochs, lr, trainable, seed, json } => {
            let (freeze_backbone, freeze_stem) = match trainable {
                TrainableArg::Head => (true, false),
                TrainableArg::TopStage => (false, true),
                TrainableArg::All => (false, false),
            };
            commands::retrain(&project, model, epochs, lr, (freeze_backbone, freeze_stem), seed, json)
        }
        Command::Project { what: ProjectWhat::Relocate { project, from, to, dry_run, json } } => {
            let mut p = Project::open_existing(&project)?;
            let r = p.relocate(&from, &to, dry_run)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                let verb = if dry_run { "would rewrite" } else { "rewrote" };
                println!(
                    "{verb} the paths of {} candidates from {} to {}; {} of them find all their files there ({} candidates elsewhere left alone)",
                    r.changed,
                    from.display(),
                    to.display(),
                    r.found,
                    r.untouched
                );
            }
            Ok(if r.found < r.changed { ExitCode::from(3) } else { ExitCode::SUCCESS })
        }
        Command::Info { project, json } => {
            let p = Project::open_existing(&project)?;
            let c = p.counts()?;
            if json {
                println!("{}", serde_json::to_string(&c)?);
            } else {
                println!("project {}", project.display());
                println!(
                    "  candidates   {} ({} training, {} with truth)",
                    c.candidates, c.training_candidates, c.with_truth
                );
                println!("  inspectors   {}", c.inspectors);
                println!("  grades       {} events on {} candidates", c.grade_events, c.graded_candidates);
                println!("  models       {} ({} predictions)", c.models, c.predictions);
                println!("  schema       version {}", c.schema_version);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { what } => {
            match what {
                BenchWhat::Ingest { n, dir, astropy, astropy_script, pairs } => {
                    let (_tmp, dir) = bench_dir(dir)?;
                    lens_inspect::bench::write_ingest_bench_data(&dir, n)?;
                    let runs = if astropy.is_some() { pairs.max(1) } else { 1 };
                    for _ in 0..runs {
                        let r = lens_inspect::bench::ingest_speed(&dir, n)?;
                        let mut line = serde_json::to_value(&r)?;
                        if let Some(python) = &astropy {
                            for (key, pixels_only) in [("astropy", false), ("astropy_pixels_only", true)] {
                                let a =
                                    lens_inspect::bench::astropy_ingest(python, &astropy_script, &dir, pixels_only)?;
                                let rate = a.cutouts as f64 / a.seconds;
                                line[format!("{key}_cutouts_per_s")] = rate.into();
                                line[format!("{key}_ratio")] = (r.cutouts_per_s / rate).into();
                            }
                        }
                        println!("{}", serde_json::to_string(&line)?);
                    }
                }
                BenchWhat::Simulate { n, lenstronomy, lenstronomy_script, lenstronomy_n } => {
                    let tmp = tempfile::tempdir()?;
                    let r = lens_inspect::bench::simulate_speed(tmp.path(), n)?;
                    let mut line = serde_json::to_value(&r)?;
                    if let Some(python) = &lenstronomy {
                        let l = lens_inspect::bench::lenstronomy_simulate(python, &lenstronomy_script, lenstronomy_n)?;
                        let rate = l.cutouts as f64 / l.seconds;
                        line["lenstronomy_cutouts_per_s"] = rate.into();
                        line["ratio_per_core"] = (r.one_thread_cutouts_per_s / rate).into();
                        line["lenses_ratio_per_core"] = (r.one_thread_lenses_per_s / rate).into();
                    }
                    println!("{}", serde_json::to_string(&line)?);
                }
                BenchWhat::Model { arch, repeats, torch: None, .. } => {
                    let r = lens_inspect::bench::model_speed(arch.into(), repeats);
                    println!("{}", serde_json::to_string(&r)?);
                }
                BenchWhat::Model { arch, repeats, torch: Some(python), torch_script, pairs } => {
                    let runs =
                        lens_inspect::bench::compare_with_torch(&python, &torch_script, arch.into(), repeats, pairs)?;
                    for r in &runs {
                        println!("{}", serde_json::to_string(r)?);
                    }
                    let median = |mut v: Vec<f64>| {
                        v.sort_by(f64::total_cmp);
                        v[v.len() / 2]
                    };
                    eprintln!(
                        "burn / PyTorch, median of {} pairs: inference {:.2}x, training {:.2}x",
                        runs.len(),
                        median(runs.iter().map(|r| r.inference_ratio).collect()),
                        median(runs.iter().map(|r| r.train_ratio).collect())
                    );
                }
                BenchWhat::ActiveLearning(args) => {
                    return commands::bench_active_learning(args);
                }
                BenchWhat::Cutouts { tiles, side, objects, dir, astropy, astropy_script, pairs } => {
                    let (_tmp, dir) = bench_dir(dir)?;
                    lens_inspect::bench::write_cutout_bench_data(&dir, tiles, side, objects)?;
                    // One untimed run first: sparse tiles (like tiles read for the first time)
                    // are slow to fault into the page cache, and whichever side ran first would
                    // pay for both.
                    lens_inspect::bench::cutouts_speed(&dir, tiles, side, objects)?;
                    let runs = if astropy.is_some() { pairs.max(1) } else { 1 };
                    for _ in 0..runs {
                        let r = lens_inspect::bench::cutouts_speed(&dir, tiles, side, objects)?;
                        let mut line = serde_json::to_value(&r)?;
                        if let Some(python) = &astropy {
                            let a = lens_inspect::bench::astropy_cutouts(python, &astropy_script, &dir)?;
                            line["astropy_cutouts_per_s"] = (a.cutouts as f64 / a.seconds).into();
                            line["astropy_cutouts"] = a.cutouts.into();
                            line["ratio"] = (r.cutouts_per_s / (a.cutouts as f64 / a.seconds)).into();
                        }
                        println!("{}", serde_json::to_string(&line)?);
                    }
                }
                BenchWhat::Zooniverse { n, users, candidates, dir } => {
                    let (_tmp, dir) = bench_dir(dir)?;
                    let r = lens_inspect::bench::zooniverse_speed(&dir, n, users, candidates)?;
                    println!("{}", serde_json::to_string(&r)?);
                }
                BenchWhat::Composite { iterations } => {
                    let r = lens_inspect::bench::composite_speed(101, iterations);
                    println!("{}", serde_json::to_string(&r)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A bench's data folder: the one given (created), or a temporary one removed when the
/// returned guard is dropped.
fn bench_dir(dir: Option<PathBuf>) -> Result<(Option<tempfile::TempDir>, PathBuf)> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            Ok((None, d))
        }
        None => {
            let tmp = tempfile::tempdir()?;
            let path = tmp.path().to_path_buf();
            Ok((Some(tmp), path))
        }
    }
}

/// Simulates the first `n` objects again (same seed, same pixels) and lays them out labelled.
fn write_contact_sheet(
    sim: &Simulator,
    n: usize,
    seed: u64,
    path: &std::path::Path,
    settings: &DisplaySettings,
) -> Result<()> {
    use lens_inspect::sim::sheet::{contact_sheet, save_sheet, Tile};
    let objects: Vec<_> =
        (0..n as u64).map(|k| sim.simulate(&(lens_inspect::sim::FIRST_ID + k).to_string(), seed, k, None)).collect();
    let tiles: Vec<Tile> = objects
        .iter()
        .map(|o| Tile {
            cutout: &o.cutout,
            caption: match o.truth.theta_e_arcsec {
                Some(e) => format!("{} {e:.1}", o.truth.kind.name().trim_start_matches("lens_")),
                None => o.truth.kind.name().to_string(),
            },
            highlight: o.truth.is_lens,
        })
        .collect();
    let scale = lens_inspect::render::FluxScale { noise_r: sim.config.sky_sigma(Band::R) as f32 };
    let sheet = contact_sheet(&tiles, 10, settings, scale);
    save_sheet(path, &sheet)?;
    Ok(())
}

fn options_truth_given(s: &lens_inspect::project::ingest::IngestSummary) -> bool {
    s.truth_matched + s.truth_unmatched > 0
}

fn main() -> ExitCode {
    lens_inspect::alloc::keep_freed_memory();
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", lens_inspect::error_text::one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// A number from `text` inside `range`, refused with the value and the range named otherwise.
fn number_in(text: &str, range: std::ops::RangeInclusive<f32>, what: &str) -> Result<f32, String> {
    let v: f32 = text.parse().map_err(|_| format!("'{text}' is not a number"))?;
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not {what} between {} and {}", range.start(), range.end()))
    }
}

/// Arcseconds per pixel, within the scales a cutout's header is trusted with (0.01-5").
fn arcsec_per_pixel(text: &str) -> Result<f64, String> {
    let v: f64 = text.parse().map_err(|_| format!("'{text}' is not a number"))?;
    let trusted = lens_inspect::cutout::TRUSTED_PIXEL_ARCSEC;
    if trusted.contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a pixel scale between {} and {} arcsec", trusted.start(), trusted.end()))
    }
}

/// A knee in robust sigmas: 0 (off) or 1-50.
fn knee_in_sigmas(text: &str) -> Result<f32, String> {
    if text.parse::<f32>() == Ok(0.0) {
        return Ok(0.0);
    }
    number_in(text, 1.0..=50.0, "a knee in sigmas (0 turns it off)")
}

/// A depth loss in magnitudes, 0-3.
fn magnitudes_up_to_3(text: &str) -> Result<f32, String> {
    number_in(text, 0.0..=3.0, "a depth loss in magnitudes")
}

/// A share between 0 and 1, refused with the value named otherwise.
fn share_in_unit_interval(text: &str) -> Result<f32, String> {
    number_in(text, 0.0..=1.0, "a share")
}

/// `KIND=FACTOR` of `train --boost`: a look-alike's kind and a factor above 0.
fn parse_boost(s: &str) -> Result<(lens_inspect::sim::Kind, f64), String> {
    use lens_inspect::sim::Kind;
    let (name, factor) = s.split_once('=').ok_or_else(|| format!("`{s}`: give KIND=FACTOR, e.g. ring_galaxy=2"))?;
    let kind = Kind::from_name(name.trim()).filter(|k| !k.is_lens()).ok_or_else(|| {
        let known: Vec<&str> = Kind::ALL.iter().filter(|k| !k.is_lens()).map(|k| k.name()).collect();
        format!("`{name}` is not a kind of look-alike; one of: {}", known.join(", "))
    })?;
    let factor: f64 = factor.trim().parse().map_err(|_| format!("`{factor}`: the factor must be a number"))?;
    if !(factor > 0.0 && factor.is_finite()) {
        return Err(format!("`{factor}`: the factor must be above 0"));
    }
    Ok((kind, factor))
}
