//! The stress suite: a model measured on its in-domain test set and on simulated sets that each
//! move one nuisance outside what training saw ([`crate::sim::StressSet`]), plus the narrow KiDS
//! look of the first shipped model. Every set is made once per seed in a folder and reused, so
//! models are compared on the same cutouts.

use super::data::Dataset;
use super::score::Scorer;
use super::validation::{bootstrap, by_group, threshold_at_tpr, GroupRates, Grouping, MetricsWithIntervals};
use crate::project::ingest::read_truth_csv;
use crate::sim::{write_run, Look, SimConfig, Simulator, StressSet, SIMULATOR_VERSION, TRUTH_FILE};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One row of the suite's table.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteRow {
    pub set: String,
    pub what: String,
    pub metrics: MetricsWithIntervals,
    /// Non-lens ring galaxies scoring at or above the threshold that keeps half of the lenses.
    pub ring_fpr_at_tpr50: Option<f64>,
}

/// The whole suite: the table, and the in-domain set's rates per kind.
#[derive(Debug, Clone, Serialize)]
pub struct Suite {
    pub rows: Vec<SuiteRow>,
    pub in_domain_by_kind: Vec<GroupRates>,
    pub n_per_set: usize,
    pub seed: u64,
    pub tta_views: usize,
    /// The [`SIMULATOR_VERSION`] that made the sets: figures of different versions are of
    /// different cutouts.
    pub simulator_version: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("writing the test set {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("reading the test set {path}: {detail}")]
    Read { path: PathBuf, detail: String },
}

/// The sets of the suite, in table order: (folder name, look, description).
pub fn sets() -> Vec<(String, Look, String)> {
    let mut v = vec![
        ("in-domain".to_string(), Look::Randomised, "randomised, as in training (fresh seed)".to_string()),
        ("kids".to_string(), Look::Kids, "narrow KiDS look of the first model".to_string()),
    ];
    for s in StressSet::ALL {
        v.push((format!("stress-{}", s.name()), Look::of_stress(s), s.describe().to_string()));
    }
    v
}

/// Simulates the set into `dir` unless a complete one (its truth table) is already there.
pub fn ensure_set(dir: &Path, look: Look, n: usize, seed: u64) -> Result<(), SuiteError> {
    if dir.join(TRUTH_FILE).exists() {
        return Ok(());
    }
    let sim = Simulator::new(SimConfig { ranges: look.ranges(), ..SimConfig::default() });
    write_run(&sim, n, seed, dir, &|_| {}).map_err(|source| SuiteError::Write { path: dir.into(), source })?;
    Ok(())
}

/// Scores, truth and the `kind` column of every cutout of a set.
type Scored = (Vec<f64>, Vec<bool>, Vec<String>);

fn score_set(scorer: &Scorer, dir: &Path) -> Result<Scored, SuiteError> {
    let read = |detail: String| SuiteError::Read { path: dir.into(), detail };
    let (data, _problems, _): (Dataset, _, _) =
        super::load_labelled(dir, None, scorer.card.normalisation(), scorer.card.input_size)
            .map_err(|e| read(e.to_string()))?;
    let truth = read_truth_csv(&dir.join(TRUTH_FILE)).map_err(|e| read(e.to_string()))?;
    let scores: Vec<f64> = scorer.score_dataset(&data, 64).iter().map(|&s| s as f64).collect();
    let is_lens: Vec<bool> = data.labels.iter().map(|&l| l >= 0.5).collect();
    let kinds: Vec<String> = data
        .names
        .iter()
        .map(|n| {
            truth.get(n).and_then(|t| t.extra.get("kind")).and_then(|v| v.as_str()).unwrap_or("(none)").to_string()
        })
        .collect();
    Ok((scores, is_lens, kinds))
}

/// Runs the suite: every set made (if missing) under `root` with `n` cutouts (seed `seed + k` for
/// the k-th set), scored, and measured with 95 % bootstrap intervals. `progress(set)` names each
/// set as it starts.
pub fn run(scorer: &Scorer, root: &Path, n: usize, seed: u64, progress: &dyn Fn(&str)) -> Result<Suite, SuiteError> {
    let mut rows = Vec::new();
    let mut in_domain_by_kind = Vec::new();
    for (k, (name, look, what)) in sets().into_iter().enumerate() {
        progress(&name);
        // The simulator's version in the name: sets of an older simulator stay on disk, unused.
        let dir = root.join(format!("{name}-n{n}-seed{}-sim{SIMULATOR_VERSION}", seed + k as u64));
        ensure_set(&dir, look, n, seed + k as u64)?;
        let (scores, is_lens, kinds) = score_set(scorer, &dir)?;
        let metrics = bootstrap(&scores, &is_lens, 1000, seed);
        let threshold = threshold_at_tpr(&scores, &is_lens, 0.5);
        let rings: Vec<usize> = (0..scores.len()).filter(|&i| kinds[i] == "ring_galaxy").collect();
        let ring_fpr_at_tpr50 = (!rings.is_empty())
            .then(|| rings.iter().filter(|&&i| scores[i] >= threshold).count() as f64 / rings.len() as f64);
        if k == 0 {
            in_domain_by_kind = by_group(&scores, &is_lens, &Grouping::alphabetical(kinds));
        }
        rows.push(SuiteRow { set: name, what, metrics, ring_fpr_at_tpr50 });
    }
    Ok(Suite {
        rows,
        in_domain_by_kind,
        n_per_set: n,
        seed,
        tta_views: scorer.views,
        simulator_version: SIMULATOR_VERSION,
    })
}

impl Suite {
    /// The suite as Markdown tables (for docs and model cards).
    pub fn markdown(&self) -> String {
        let pct = |v: Option<f64>| v.map(|x| format!("{:.1} %", 100.0 * x)).unwrap_or_else(|| "-".into());
        let mut s = String::from(
            "| set | what is different | AUROC (95 % CI) | TPR0 | TPR10 (95 % CI) | ring galaxies above the 50 %-of-lenses threshold |\n|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            let m = &r.metrics;
            s.push_str(&format!(
                "| {} | {} | {:.3} ({:.3}-{:.3}) | {:.2} | {:.2} ({:.2}-{:.2}) | {} |\n",
                r.set,
                r.what,
                m.auroc.value,
                m.auroc.lo,
                m.auroc.hi,
                m.tpr0.value,
                m.tpr10.value,
                m.tpr10.lo,
                m.tpr10.hi,
                pct(r.ring_fpr_at_tpr50)
            ));
        }
        s.push_str(&format!(
            "\n{} cutouts per set, seeds {} on, made by simulator version {}.\n",
            self.n_per_set, self.seed, self.simulator_version
        ));
        s.push_str("\nIn-domain set, per kind (threshold: the score that keeps 50 % of all lenses):\n\n");
        s.push_str("| kind | n | lenses found (at threshold / P > 0.5) | false positives (at threshold / P > 0.5) | AUROC against the other class |\n|---|---|---|---|---|\n");
        for g in &self.in_domain_by_kind {
            s.push_str(&format!(
                "| {} | {} | {} / {} | {} / {} | {} |\n",
                g.group,
                g.n,
                pct(g.tpr_at_tpr50),
                pct(g.tpr_at_half),
                pct(g.fpr_at_tpr50),
                pct(g.fpr_at_half),
                g.auroc_vs_rest.map(|a| format!("{a:.3}")).unwrap_or_else(|| "-".into())
            ));
        }
        s
    }
}
