//! Scoring a survey-sized project in pieces, on a cluster: each job scores one deterministic
//! shard into a small predictions file, and merging folds the files into the project.
//!
//! A candidate's shard is FNV-1a of its name modulo N, so every job computes the same split
//! without talking to the others, and a project copied to the cluster splits the same way as the
//! original. Merging is idempotent: shards of one model (same file digest) land in one model
//! version; merging a shard again replaces its scores with the same values.

use super::score::{score_candidates_where, ScoreError, Scorer};
use crate::hash::fnv1a64;
use crate::project::{ModelVersionWrite, Project, ProjectError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

pub const SHARD_FORMAT: &str = "lens-inspect-shard/1";

/// Which of `n` shards a candidate belongs to (0-based).
pub fn shard_of(name: &str, n: usize) -> usize {
    (fnv1a64(name.as_bytes()) % n.max(1) as u64) as usize
}

/// `K/N` as written on the command line (1-based K).
pub fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let (k, n) = text.split_once('/').ok_or_else(|| format!("--shard {text:?}: expected K/N, e.g. 3/16"))?;
    let k: usize = k.trim().parse().map_err(|_| format!("--shard {text:?}: K is not a number"))?;
    let n: usize = n.trim().parse().map_err(|_| format!("--shard {text:?}: N is not a number"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("--shard {text:?}: needs 1 <= K <= N"));
    }
    Ok((k, n))
}

/// One shard's scores, as a job writes them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardFile {
    pub format: String,
    /// The model's name (its file stem) and a digest of its bytes: shards of one model merge
    /// into one version.
    pub model_name: String,
    pub model_digest: String,
    pub card: serde_json::Value,
    /// 1-based shard number and the number of shards.
    pub shard: usize,
    pub of: usize,
    /// Candidate name -> score.
    pub scores: Vec<(String, f32)>,
    /// Candidates of the shard that could not be scored, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Digest of a model file's bytes, as shard files carry it.
pub fn model_digest(bytes: &[u8]) -> String {
    format!("fnv1a64:{:016x}", fnv1a64(bytes))
}

/// Scores shard `k` of `n` (1-based) of a project opened read-only.
pub fn score_shard(
    project: &Project,
    scorer: &Scorer,
    model_name: &str,
    model_bytes: &[u8],
    (k, n): (usize, usize),
    batch: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ShardFile, ScoreError> {
    let scored = score_candidates_where(project, scorer, batch, progress, &|c| shard_of(&c.name, n) == k - 1)?;
    let names: HashMap<i64, String> = project.candidates()?.into_iter().map(|c| (c.id, c.name)).collect();
    let mut scores: Vec<(String, f32)> =
        scored.scores.iter().filter_map(|(id, s)| names.get(id).map(|n| (n.clone(), *s))).collect();
    scores.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ShardFile {
        format: SHARD_FORMAT.into(),
        model_name: model_name.into(),
        model_digest: model_digest(model_bytes),
        card: serde_json::to_value(&scorer.card).unwrap_or_default(),
        shard: k,
        of: n,
        scores,
        failed: scored.failed,
    })
}

/// Writes a shard file (JSON) atomically: a job killed midway leaves no half file to merge.
pub fn write_shard(path: &Path, shard: &ShardFile) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, serde_json::to_vec(shard).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
}

/// What merging did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MergeReport {
    /// Model version per model digest that was merged into.
    pub versions: BTreeMap<String, i64>,
    /// Scores written (new or replaced with the same model's score).
    pub scores: usize,
    /// Shard files read.
    pub files: usize,
    /// Shards (1-based) of each model not merged yet: the split is incomplete until they are.
    pub missing_shards: BTreeMap<String, Vec<usize>>,
    /// Names in the shards that the project does not have.
    pub unknown_candidates: usize,
    /// Candidates the jobs could not score.
    pub failed: usize,
}

/// Folds shard files into the project: one model version per model digest (found again on a
/// later merge), scores by candidate name.
pub fn merge_shards(project: &mut Project, files: &[PathBuf]) -> Result<MergeReport, MergeError> {
    let mut shards = Vec::new();
    for path in files {
        let fail = |detail: String| MergeError::File { path: path.clone(), detail };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let shard: ShardFile = serde_json::from_slice(&bytes).map_err(|e| fail(format!("not a shard file ({e})")))?;
        if shard.format != SHARD_FORMAT {
            return Err(fail(format!("format {:?}, this program reads {SHARD_FORMAT:?}", shard.format)));
        }
        if shard.of == 0 || shard.shard == 0 || shard.shard > shard.of {
            return Err(fail(format!("shard {}/{} is impossible", shard.shard, shard.of)));
        }
        shards.push(shard);
    }
    let ids: HashMap<String, i64> = project.candidates()?.into_iter().map(|c| (c.name, c.id)).collect();
    let names: HashMap<i64, &str> = ids.iter().map(|(name, &id)| (id, name.as_str())).collect();
    let mut report = MergeReport { files: shards.len(), ..Default::default() };
    let mut by_model: BTreeMap<String, Vec<&ShardFile>> = BTreeMap::new();
    for s in &shards {
        by_model.entry(s.model_digest.clone()).or_default().push(s);
    }
    for (digest, group) in by_model {
        let existing = project
            .model_history()?
            .into_iter()
            .find(|v| v.metrics.get("shard_digest").and_then(|d| d.as_str()) == Some(digest.as_str()))
            .map(|v| v.id);
        let mut scores = Vec::new();
        for s in &group {
            for (name, score) in &s.scores {
                match ids.get(name) {
                    Some(&id) => scores.push((id, *score)),
                    None => report.unknown_candidates += 1,
                }
            }
            report.failed += s.failed.len();
        }
        let version = match existing {
            Some(v) => {
                project.store_predictions(v, &scores)?;
                v
            }
            None => {
                let first = group[0];
                let metrics = serde_json::json!({ "shard_digest": digest, "shards": first.of });
                project.add_model_version_with_scores(
                    &ModelVersionWrite {
                        name: &first.model_name,
                        card_json: &first.card.to_string(),
                        metrics_json: &metrics.to_string(),
                        weights: None,
                        current: false,
                    },
                    &scores,
                )?
            }
        };
        report.scores += scores.len();
        report.versions.insert(digest.clone(), version);
        // Which shards of this model have ever been merged: those with scores in the version.
        let n = group[0].of;
        let scored: BTreeSet<usize> = project
            .predictions_of(version)?
            .keys()
            .filter_map(|id| names.get(id).map(|name| shard_of(name, n) + 1))
            .collect();
        let seen: BTreeSet<usize> = group.iter().map(|s| s.shard).collect();
        let missing: Vec<usize> = (1..=n).filter(|k| !scored.contains(k) && !seen.contains(k)).collect();
        if !missing.is_empty() {
            report.missing_shards.insert(digest, missing);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_names_evenly_and_the_same_way_every_time() {
        let n = 8;
        let mut counts = vec![0usize; n];
        for k in 0..8000 {
            counts[shard_of(&format!("KiDS J{k:06}"), n)] += 1;
        }
        // 1000 expected per shard; binomial sd ~30.
        assert!(counts.iter().all(|&c| (850..1150).contains(&c)), "{counts:?}");
        assert_eq!(shard_of("100042", 4), shard_of("100042", 4));
    }

    #[test]
    fn shard_arguments_are_checked() {
        assert_eq!(parse_shard("3/16"), Ok((3, 16)));
        assert!(parse_shard("0/4").is_err());
        assert!(parse_shard("5/4").is_err());
        assert!(parse_shard("4").is_err());
        assert!(parse_shard("a/4").is_err());
    }
}
