//! Model files: the weights with the model card that says how to use them.
//!
//! A `.lensmodel` file is one container, so weights never travel without their card:
//! the magic line `LENSINSPECT-MODEL\n`, a u32 format version, the card as JSON (u64 length
//! first), the weights as safetensors (u64 length first), and an FNV-1a 64 checksum of all that
//! came before. Format 2 is an ensemble: after the first weights, a u32 count of further members
//! and each one's safetensors (u64 length first), all of the same architecture and card; a
//! single model is still written as format 1. Loading refuses, each with its own message: a file that is not a model, one from
//! a newer program, a truncated or altered one, one whose band order, input size or architecture
//! differs from this program's, and weights that do not fit the architecture.

use super::net::{Arch, LensNet, CONV_CHANNELS};
use crate::cutout::Band;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"LENSINSPECT-MODEL\n";
/// The newest container format this program writes and reads (1: one model, 2: an ensemble).
pub const FORMAT_VERSION: u32 = 2;

/// Everything needed to use the weights correctly, saved with them (and beside them as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub arch: Arch,
    /// Order of the input planes.
    pub band_order: Vec<String>,
    /// Cutout side in pixels.
    pub input_size: usize,
    /// Preprocessing: clip in robust sigmas (SPEC 2.2).
    pub clip_sigma: f32,
    /// Preprocessing: compression beyond this many robust sigmas before the clip
    /// ([`crate::cutout::Normalisation`]); 0, and absent in older cards: none.
    #[serde(default)]
    pub knee_sigma: f32,
    pub conv_channels: Vec<usize>,
    /// How the model was made: commands, seeds, data, epochs, the parent model.
    #[serde(default)]
    pub provenance: serde_json::Value,
    /// Validation metrics at the kept checkpoint.
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// Test-time augmentation used when scoring: views of the 8 rotations and flips averaged
    /// (0 or 1: none). Chosen by measurement (docs/robustness.md); older cards have none.
    #[serde(default)]
    pub tta_views: usize,
    /// Models in the file whose probabilities are averaged (0 or 1: one model).
    #[serde(default)]
    pub ensemble: usize,
}

impl ModelCard {
    /// How this model's input is made from a cutout; scoring, maps and retraining all use it.
    pub fn normalisation(&self) -> crate::cutout::Normalisation {
        crate::cutout::Normalisation { clip_sigma: self.clip_sigma, knee_sigma: self.knee_sigma }
    }

    pub fn new(arch: Arch, input_size: usize, norm: impl Into<crate::cutout::Normalisation>) -> ModelCard {
        let norm = norm.into();
        ModelCard {
            arch,
            band_order: Band::ALL.iter().map(|b| b.letter().to_string()).collect(),
            input_size,
            clip_sigma: norm.clip_sigma,
            knee_sigma: norm.knee_sigma,
            conv_channels: CONV_CHANNELS.to_vec(),
            provenance: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
            tta_views: 1,
            ensemble: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("cannot read model {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a lens-inspect model file")]
    NotAModel { path: PathBuf },
    #[error("model {path} has format {found}, newer than this program's {supported}: update lens-inspect")]
    NewerFormat { path: PathBuf, found: u32, supported: u32 },
    #[error("model {path} is truncated ({detail})")]
    Truncated { path: PathBuf, detail: String },
    #[error("model {path} is corrupt: its checksum does not match its contents")]
    Corrupt { path: PathBuf },
    #[error("model {path} has an unreadable card: {detail}")]
    BadCard { path: PathBuf, detail: String },
    #[error("model {path} expects bands in order {found:?}, this program feeds {expected:?}")]
    BandOrder { path: PathBuf, found: Vec<String>, expected: Vec<String> },
    #[error("model {path} was built for a different network ({detail})")]
    Architecture { path: PathBuf, detail: String },
    #[error("model {path}: weights do not fit a {arch} network: {detail}")]
    Weights { path: PathBuf, arch: &'static str, detail: String },
}

use crate::hash::fnv1a64;

/// A checksum of a network's weights alone (not its card): what a cache of its outputs must be
/// keyed by, since two files can hold the same card and different weights.
/// The bytes [`weights_of`] writes are not the same twice (safetensors lays the tensors out in a
/// hash map's order), so this sums each tensor by name, in sorted order.
pub fn weights_fingerprint(net: &LensNet) -> Result<u64, String> {
    let bytes = weights_of(net)?;
    let bad = || "weights: not a safetensors buffer".to_string();
    let head_len = u64::from_le_bytes(bytes.get(..8).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
    let head = bytes.get(8..8 + head_len).ok_or_else(bad)?;
    let data = &bytes[8 + head_len..];
    let header: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(head).map_err(|e| format!("weights: {e}"))?;
    let mut h = crate::hash::Fnv1a::default();
    for (name, info) in header.iter().filter(|(name, _)| name.as_str() != "__metadata__") {
        let offsets = info.get("data_offsets").and_then(|o| o.as_array()).ok_or_else(bad)?;
        let at = |k: usize| offsets.get(k).and_then(|v| v.as_u64()).map(|v| v as usize).ok_or_else(bad);
        let (from, to) = (at(0)?, at(1)?);
        h.feed(name.as_bytes());
        h.feed(info.get("dtype").map(|d| d.to_string()).unwrap_or_default().as_bytes());
        h.feed(info.get("shape").map(|d| d.to_string()).unwrap_or_default().as_bytes());
        h.feed(data.get(from..to).ok_or_else(bad)?);
    }
    Ok(h.finish())
}

fn weights_of(net: &LensNet) -> Result<Vec<u8>, String> {
    let mut store = SafetensorsStore::from_bytes(None);
    net.save_into(&mut store).map_err(|e| format!("saving weights: {e}"))?;
    store.get_bytes().map_err(|e| format!("saving weights: {e}"))
}

/// Serialises a model and its card.
pub fn to_bytes(net: &LensNet, card: &ModelCard) -> Result<Vec<u8>, String> {
    ensemble_to_bytes(std::slice::from_ref(net), card)
}

/// Serialises an ensemble (all members of the card's architecture) with one card; one member is
/// written as an ordinary model (format 1).
pub fn ensemble_to_bytes(nets: &[LensNet], card: &ModelCard) -> Result<Vec<u8>, String> {
    let Some((first, rest)) = nets.split_first() else { return Err("an ensemble needs at least one model".into()) };
    let mut card = card.clone();
    card.ensemble = nets.len();
    let weights = weights_of(first)?;
    let card_json = serde_json::to_vec_pretty(&card).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(nets.len() * weights.len() + card_json.len() + 64);
    out.extend_from_slice(MAGIC);
    let version: u32 = if rest.is_empty() { 1 } else { 2 };
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(card_json.len() as u64).to_le_bytes());
    out.extend_from_slice(&card_json);
    out.extend_from_slice(&(weights.len() as u64).to_le_bytes());
    out.extend_from_slice(&weights);
    if !rest.is_empty() {
        out.extend_from_slice(&(rest.len() as u32).to_le_bytes());
        for net in rest {
            let w = weights_of(net)?;
            out.extend_from_slice(&(w.len() as u64).to_le_bytes());
            out.extend_from_slice(&w);
        }
    }
    let sum = fnv1a64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// Saves a model file atomically (temporary name, then rename), and its card beside it as
/// `<name>.json` for people and tools that do not read the container.
pub fn save(path: &Path, net: &LensNet, card: &ModelCard) -> Result<(), ModelFileError> {
    save_ensemble(path, std::slice::from_ref(net), card)
}

/// [`save`] for an ensemble.
pub fn save_ensemble(path: &Path, nets: &[LensNet], card: &ModelCard) -> Result<(), ModelFileError> {
    let io = |source| ModelFileError::Io { path: path.into(), source };
    let mut card = card.clone();
    card.ensemble = nets.len();
    let card = &card;
    let bytes = ensemble_to_bytes(nets, card).map_err(|detail| ModelFileError::Weights {
        path: path.into(),
        arch: card.arch.name(),
        detail,
    })?;
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, &bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    let card_path = path.with_extension("json");
    std::fs::write(&card_path, serde_json::to_vec_pretty(card).unwrap_or_default()).map_err(io)?;
    Ok(())
}

/// Reads and checks a model file, returning the network (on `device`) and its card.
pub fn load(path: &Path, device: &Device) -> Result<(LensNet, ModelCard), ModelFileError> {
    let bytes = std::fs::read(path).map_err(|source| ModelFileError::Io { path: path.into(), source })?;
    from_bytes(path, &bytes, device)
}

/// Reads every member of a model file (one for an ordinary model).
pub fn load_members(path: &Path, device: &Device) -> Result<(Vec<LensNet>, ModelCard), ModelFileError> {
    let bytes = std::fs::read(path).map_err(|source| ModelFileError::Io { path: path.into(), source })?;
    members_from_bytes(path, &bytes, device)
}

/// Parses a model from bytes (`path` names it in errors); of an ensemble, its first member
/// (what training, retraining and the maps work on).
pub fn from_bytes(path: &Path, bytes: &[u8], device: &Device) -> Result<(LensNet, ModelCard), ModelFileError> {
    let (mut nets, card) = members_from_bytes(path, bytes, device)?;
    Ok((nets.swap_remove(0), card))
}

/// Parses every member of a model from bytes.
pub fn members_from_bytes(
    path: &Path,
    bytes: &[u8],
    device: &Device,
) -> Result<(Vec<LensNet>, ModelCard), ModelFileError> {
    let p = || path.to_path_buf();
    if !bytes.starts_with(MAGIC) {
        if !bytes.is_empty() && MAGIC.starts_with(bytes) {
            return Err(ModelFileError::Truncated {
                path: p(),
                detail: format!("{} bytes, ends inside the header", bytes.len()),
            });
        }
        return Err(ModelFileError::NotAModel { path: p() });
    }
    let mut at = MAGIC.len();
    let take = |at: &mut usize, n: usize, what: &str| -> Result<std::ops::Range<usize>, ModelFileError> {
        let end = at.checked_add(n).filter(|&e| e <= bytes.len()).ok_or_else(|| ModelFileError::Truncated {
            path: p(),
            detail: format!("{} bytes, ends inside the {what}", bytes.len()),
        })?;
        let r = *at..end;
        *at = end;
        Ok(r)
    };
    let r = take(&mut at, 4, "header")?;
    let version = u32::from_le_bytes(bytes[r].try_into().expect("4 bytes"));
    if version > FORMAT_VERSION {
        return Err(ModelFileError::NewerFormat { path: p(), found: version, supported: FORMAT_VERSION });
    }
    let r = take(&mut at, 8, "header")?;
    let card_len = u64::from_le_bytes(bytes[r].try_into().expect("8 bytes")) as usize;
    let card_range = take(&mut at, card_len, "model card")?;
    let r = take(&mut at, 8, "header")?;
    let weights_len = u64::from_le_bytes(bytes[r].try_into().expect("8 bytes")) as usize;
    let weights_range = take(&mut at, weights_len, "weights")?;
    let mut ranges = vec![weights_range];
    if version >= 2 {
        let r = take(&mut at, 4, "header")?;
        let more = u32::from_le_bytes(bytes[r].try_into().expect("4 bytes")) as usize;
        if more > 64 {
            return Err(ModelFileError::Corrupt { path: p() });
        }
        for _ in 0..more {
            let r = take(&mut at, 8, "header")?;
            let len = u64::from_le_bytes(bytes[r].try_into().expect("8 bytes")) as usize;
            ranges.push(take(&mut at, len, "weights")?);
        }
    }
    let body_end = at;
    let r = take(&mut at, 8, "checksum")?;
    let sum = u64::from_le_bytes(bytes[r].try_into().expect("8 bytes"));
    if fnv1a64(&bytes[..body_end]) != sum || at != bytes.len() {
        return Err(ModelFileError::Corrupt { path: p() });
    }
    let card: ModelCard = serde_json::from_slice(&bytes[card_range])
        .map_err(|e| ModelFileError::BadCard { path: p(), detail: e.to_string() })?;
    let expected: Vec<String> = Band::ALL.iter().map(|b| b.letter().to_string()).collect();
    if card.band_order != expected {
        return Err(ModelFileError::BandOrder { path: p(), found: card.band_order, expected });
    }
    if card.conv_channels != CONV_CHANNELS {
        return Err(ModelFileError::Architecture {
            path: p(),
            detail: format!("convolution channels {:?}, this program has {:?}", card.conv_channels, CONV_CHANNELS),
        });
    }
    let mut nets = Vec::with_capacity(ranges.len());
    for range in ranges {
        let mut net = LensNet::new(card.arch, device);
        let mut store = SafetensorsStore::from_bytes(Some(bytes[range].to_vec()));
        let applied = net.load_from(&mut store).map_err(|e| ModelFileError::Weights {
            path: p(),
            arch: card.arch.name(),
            detail: e.to_string(),
        })?;
        if !applied.errors.is_empty() || !applied.missing.is_empty() || !applied.unused.is_empty() {
            let detail = format!(
                "{} errors, {} missing, {} unexpected tensors{}",
                applied.errors.len(),
                applied.missing.len(),
                applied.unused.len(),
                applied.missing.first().map(|m| format!(" (first missing: {})", m.0)).unwrap_or_default()
            );
            return Err(ModelFileError::Weights { path: p(), arch: card.arch.name(), detail });
        }
        nets.push(net);
    }
    Ok((nets, card))
}
