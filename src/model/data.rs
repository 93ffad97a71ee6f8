//! Training and scoring data: cutouts preprocessed once (SPEC 2.2) into flat arrays, batches as
//! tensors, and the augmentations the seed applied by hand.
//!
//! Augmentation is one affine resampling per cutout — a 90-degree rotation and flip, a free
//! rotation, a zoom between 1/1.5 and 1.5, a shift of a few pixels — with bilinear interpolation
//! (outside the cutout: 0, the sky level after preprocessing), then Gaussian noise with sigma a
//! random fraction of the sky noise (which preprocessing made 1).

use super::pixel_scale;
use super::placement::Placement;
use crate::cutout::{preprocess, Cutout, Normalisation};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, RngExt};

/// Preprocessed cutouts with labels. `labels` are probabilities (1 = lens), so soft labels work.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub size: usize,
    pub inputs: Vec<f32>,
    pub labels: Vec<f32>,
    pub names: Vec<String>,
}

/// The size a data set without one takes from its first cutout: its larger side as the model
/// sees it (after resampling).
fn first_size(cutout: &Cutout) -> usize {
    let (w, h) = pixel_scale::seen_size(cutout, pixel_scale::MODEL_PIXEL_ARCSEC);
    w.max(h)
}

/// A cutout as the model takes it: resampled to the model's pixel scale if its header gives
/// another ([`pixel_scale`]), preprocessed at its own size, then fitted to `size` (cropped
/// around its centre or padded with sky; [`Placement`]).
fn model_input(cutout: &Cutout, size: usize, norm: Normalisation) -> Vec<f32> {
    let resampled;
    let cutout = match pixel_scale::scale_to_resample(cutout, pixel_scale::MODEL_PIXEL_ARCSEC) {
        Some(_) => {
            resampled = pixel_scale::resample_cutout(cutout, pixel_scale::MODEL_PIXEL_ARCSEC);
            &resampled
        }
        None => cutout,
    };
    let planes = preprocess(cutout, norm);
    let place = Placement::new(cutout.width, cutout.height, size);
    if place.is_identity() {
        planes
    } else {
        place.to_model(&planes)
    }
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn per_item(&self) -> usize {
        4 * self.size * self.size
    }

    /// An empty data set for a model that takes `size`-pixel inputs: every cutout pushed is
    /// fitted to that size ([`Placement`]), whatever its own.
    pub fn with_size(size: usize) -> Dataset {
        Dataset { size, ..Dataset::default() }
    }

    /// Adds a cutout: resampled to the model's pixel scale if its header gives another
    /// ([`pixel_scale`]), preprocessed at its own size, then fitted to the data set's size
    /// (cropped around its centre or padded with sky; [`Placement`]). A data set without a size
    /// takes the first cutout's (its larger side).
    pub fn push(&mut self, cutout: &Cutout, label: f32, norm: impl Into<Normalisation>) {
        if self.size == 0 {
            self.size = first_size(cutout);
        }
        self.inputs.extend(model_input(cutout, self.size, norm.into()));
        self.labels.push(label);
        self.names.push(cutout.name.clone());
    }

    /// [`Dataset::push`] for many cutouts, prepared on all cores (resampling and preprocessing
    /// are most of reading a folder of another survey's pixels), kept in order.
    pub fn push_all(&mut self, items: &[(&Cutout, f32)], norm: impl Into<Normalisation>) {
        use rayon::prelude::*;
        let Some((first, _)) = items.first() else { return };
        if self.size == 0 {
            self.size = first_size(first);
        }
        let (size, norm, per_item) = (self.size, norm.into(), self.per_item());
        // Written in place: a folder of 20,000 cutouts is 3 GB of inputs, not to be held twice.
        let start = self.inputs.len();
        self.inputs.resize(start + items.len() * per_item, 0.0);
        self.inputs[start..]
            .par_chunks_mut(per_item)
            .zip(items.par_iter())
            .for_each(|(slot, (c, _))| slot.copy_from_slice(&model_input(c, size, norm)));
        for (cutout, label) in items {
            self.labels.push(*label);
            self.names.push(cutout.name.clone());
        }
    }

    pub fn item(&self, k: usize) -> &[f32] {
        &self.inputs[k * self.per_item()..(k + 1) * self.per_item()]
    }

    /// Splits off the items whose indices are in `take` (sorted or not) as a new data set.
    pub fn split(&self, take: &[usize]) -> (Dataset, Dataset) {
        let mut chosen = vec![false; self.len()];
        take.iter().for_each(|&k| chosen[k] = true);
        let mut a = Dataset { size: self.size, ..Default::default() };
        let mut b = Dataset { size: self.size, ..Default::default() };
        for (k, &c) in chosen.iter().enumerate() {
            let d = if c { &mut b } else { &mut a };
            d.inputs.extend_from_slice(self.item(k));
            d.labels.push(self.labels[k]);
            d.names.push(self.names[k].clone());
        }
        (a, b)
    }
}

/// Indices of the `k` highest `scores` (best first; ties: the earlier index) followed by
/// `others` drawn at random, without repeats, from the rest. `adapt --top K --sample R` keeps a
/// survey's candidates this way, whether the scores are the teacher's or a project's: where
/// lenses are rare, the cutouts a model ranks highest hold most of them, and adapting on those
/// gained where adapting on the whole survey lost; a random sample beside them shows the
/// survey's ordinary look too (docs/robustness.md, section 6).
pub fn highest_and_random(scores: &[f32], k: usize, others: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut rest = order.split_off(k.min(order.len()));
    for i in 0..others.min(rest.len()) {
        let j = rng.random_range(i..rest.len());
        rest.swap(i, j);
        order.push(rest[i]);
    }
    order
}

/// Augmentation strengths (SPEC 5: rotations, flips, noise, zoom x1.5, small shifts).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// 90-degree turns and flips (a lens has no preferred orientation).
    #[serde(default = "yes")]
    pub dihedral: bool,
    pub free_rotation: bool,
    pub max_zoom: f32,
    pub max_shift_px: f32,
    /// Largest added noise, as a fraction of the sky sigma.
    pub max_noise: f32,
    /// Share of cutouts whose colour is taken away: every band replaced by one random mix of
    /// the four. A lensed source can be any colour (a dusty or high-redshift source is as red as
    /// its lens), but a simulator's sources span a finite range of colours, and a network
    /// that finds arcs by their blueness misses the rest. Cutouts without colour can only be
    /// told apart by shape, which is what should carry over to sources of any colour. The mix's
    /// weights are scaled so the sky noise keeps its unit sigma.
    #[serde(default)]
    pub colour_drop: f32,
    /// Largest loss of depth per band, in magnitudes: each band of each cutout is made
    /// shallower by its own amount drawn from 0 to this. Surveys differ in how deep each band is
    /// relative to the others (KiDS's i is 1.3 mag shallower than its r; other surveys' are
    /// not), so the colours a network sees in sky sigmas move from survey to survey; a finder
    /// that leans on one survey's ratios fails on the next. Only shallower: the signal is
    /// scaled by k < 1 and fresh noise of sigma sqrt(1 - k^2) keeps the sky at unit sigma (a
    /// noisy image cannot be made deeper).
    #[serde(default)]
    pub band_depth_jitter_mag: f32,
}

fn yes() -> bool {
    true
}

impl Default for Augment {
    fn default() -> Augment {
        Augment {
            dihedral: true,
            free_rotation: true,
            max_zoom: 1.5,
            max_shift_px: 4.0,
            max_noise: 0.3,
            colour_drop: 0.0,
            band_depth_jitter_mag: 0.0,
        }
    }
}

impl Augment {
    /// Only the lossless part: 90-degree turns and flips move pixels without interpolating them,
    /// so the noise keeps its level and texture. For training on fresh simulations, which
    /// already vary orientation, size and PSF: bilinear resampling lowers the sky noise (by up
    /// to half at half-pixel offsets) and zooming changes the PSF, a look no real image has.
    pub fn dihedral_only() -> Augment {
        Augment { dihedral: true, ..Augment::none() }
    }

    /// No augmentation at all.
    pub fn none() -> Augment {
        Augment {
            dihedral: false,
            free_rotation: false,
            max_zoom: 1.0,
            max_shift_px: 0.0,
            max_noise: 0.0,
            colour_drop: 0.0,
            band_depth_jitter_mag: 0.0,
        }
    }
}

/// Writes an augmented copy of one preprocessed cutout (4 x size x size) into `out`.
pub fn augment_into(input: &[f32], size: usize, aug: &Augment, rng: &mut impl Rng, out: &mut [f32]) {
    let quarter = if aug.dihedral { rng.random_range(0..4) as f32 * std::f32::consts::FRAC_PI_2 } else { 0.0 };
    let angle = quarter + if aug.free_rotation { rng.random_range(0.0..std::f32::consts::TAU) } else { 0.0 };
    let flip = aug.dihedral && rng.random_bool(0.5);
    let zoom = if aug.max_zoom > 1.0 { aug.max_zoom.powf(rng.random_range(-1.0..1.0)) } else { 1.0 };
    let (sx, sy) = (rng.random_range(-1.0..1.0) * aug.max_shift_px, rng.random_range(-1.0..1.0) * aug.max_shift_px);
    let noise = rng.random_range(0.0..=aug.max_noise.max(0.0));
    // Quarter turns exactly (f32's cos(pi/2) is 4e-8, not 0): with no zoom and whole-pixel
    // shifts the pixels are then moved, not resampled.
    let (sin, cos) = if aug.free_rotation {
        angle.sin_cos()
    } else {
        [(0.0, 1.0), (1.0, 0.0), (0.0, -1.0), (-1.0, 0.0)][(angle / std::f32::consts::FRAC_PI_2).round() as usize % 4]
    };
    let c = (size as f32 - 1.0) / 2.0;
    let n = size * size;
    // Inverse map: output pixel -> input position (rotate, unzoom, unshift, flip x).
    for row in 0..size {
        for col in 0..size {
            let (x, y) = (col as f32 - c - sx, row as f32 - c - sy);
            let (mut u, v) = ((cos * x + sin * y) / zoom, (-sin * x + cos * y) / zoom);
            if flip {
                u = -u;
            }
            let (fx, fy) = (u + c, v + c);
            let (x0, y0) = (fx.floor(), fy.floor());
            let (tx, ty) = (fx - x0, fy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            for b in 0..4 {
                let plane = &input[b * n..(b + 1) * n];
                let at = |xi: i64, yi: i64| {
                    if xi >= 0 && yi >= 0 && (xi as usize) < size && (yi as usize) < size {
                        plane[yi as usize * size + xi as usize]
                    } else {
                        0.0
                    }
                };
                let v = at(x0, y0) * (1.0 - tx) * (1.0 - ty)
                    + at(x0 + 1, y0) * tx * (1.0 - ty)
                    + at(x0, y0 + 1) * (1.0 - tx) * ty
                    + at(x0 + 1, y0 + 1) * tx * ty;
                out[b * n + row * size + col] = v;
            }
        }
    }
    if noise > 0.0 {
        for v in out.iter_mut() {
            // Box-Muller from two uniforms.
            let (u1, u2): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random_range(0.0..1.0));
            *v += noise * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
        }
    }
    // Drawn only when asked for, so runs without it draw the same augmentations as before.
    if aug.colour_drop > 0.0 && rng.random_bool(f64::from(aug.colour_drop.min(1.0))) {
        let bands = out.len() / n;
        let weights: Vec<f32> = (0..bands).map(|_| rng.random_range(0.0..1.0f32)).collect();
        drop_colour(out, n, &weights);
    }
    if aug.band_depth_jitter_mag > 0.0 {
        let bands = out.len() / n;
        let loss: Vec<f32> = (0..bands).map(|_| rng.random_range(0.0..=aug.band_depth_jitter_mag)).collect();
        fade_bands(out, n, &loss, rng);
    }
}

/// Makes band `b` of `planes` shallower by `loss_mag[b]` magnitudes: signal times
/// k = 10^(-0.4 loss), plus fresh noise of sigma sqrt(1 - k^2), so unit sky noise stays unit.
fn fade_bands(planes: &mut [f32], n: usize, loss_mag: &[f32], rng: &mut impl Rng) {
    let mut z = vec![0f32; n];
    for (b, &loss) in loss_mag.iter().enumerate() {
        let k = 10f32.powf(-0.4 * loss.max(0.0));
        if k >= 1.0 {
            continue;
        }
        crate::vmath::standard_normals(rng, &mut z);
        let fresh = (1.0 - k * k).sqrt();
        for (v, z) in planes[b * n..(b + 1) * n].iter_mut().zip(&z) {
            *v = k * *v + fresh * z;
        }
    }
}

/// Replaces every band of `planes` (bands of `n` pixels each) by the mix `weights` of all of
/// them, scaled to unit norm: independent bands of unit noise give a mix of unit noise.
fn drop_colour(planes: &mut [f32], n: usize, weights: &[f32]) {
    let norm = weights.iter().map(|w| w * w).sum::<f32>().sqrt();
    let weights: Vec<f32> = if norm > 1e-6 {
        weights.iter().map(|w| w / norm).collect()
    } else {
        vec![1.0 / (weights.len() as f32).sqrt(); weights.len()]
    };
    for p in 0..n {
        let mix: f32 = weights.iter().enumerate().map(|(b, w)| w * planes[b * n + p]).sum();
        for b in 0..weights.len() {
            planes[b * n + p] = mix;
        }
    }
}

/// A batch of items as an input tensor [B, 4, size, size] and a label tensor [B].
pub fn batch(
    data: &Dataset,
    items: &[usize],
    aug: Option<(&Augment, &mut dyn rand::Rng)>,
    device: &Device,
) -> (Tensor<4>, Tensor<1>) {
    let (inputs, labels) = batch_values(data, items, aug);
    batch_tensors(inputs, labels, data.size, device)
}

/// Pixels and labels of a batch as [`batch`] makes them, before they become tensors: for
/// putting one augmented batch on two devices (a teacher's and a student's).
pub fn batch_values(
    data: &Dataset,
    items: &[usize],
    aug: Option<(&Augment, &mut dyn rand::Rng)>,
) -> (Vec<f32>, Vec<f32>) {
    let per = data.per_item();
    let mut inputs = vec![0f32; items.len() * per];
    match aug {
        Some((a, rng)) => {
            let mut rng = rng;
            for (slot, &k) in items.iter().enumerate() {
                augment_into(data.item(k), data.size, a, &mut rng, &mut inputs[slot * per..(slot + 1) * per]);
            }
        }
        None => {
            for (slot, &k) in items.iter().enumerate() {
                inputs[slot * per..(slot + 1) * per].copy_from_slice(data.item(k));
            }
        }
    }
    let labels: Vec<f32> = items.iter().map(|&k| data.labels[k]).collect();
    (inputs, labels)
}

/// [`batch_values`] of square cutouts `size` pixels wide as tensors on `device`.
pub fn batch_tensors(inputs: Vec<f32>, labels: Vec<f32>, size: usize, device: &Device) -> (Tensor<4>, Tensor<1>) {
    let n = labels.len();
    let x = Tensor::<4>::from_data(TensorData::new(inputs, [n, 4, size, size]), device);
    let y = Tensor::<1>::from_data(TensorData::new(labels, [n]), device);
    (x, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_highest_labelled_items_are_kept_in_their_order_with_their_pixels() {
        let labels = [0.1f32, 0.9, 0.5, 0.7, 0.9, 0.0];
        let d = Dataset {
            size: 1,
            // Four bands of one pixel: item k holds 4k .. 4k + 3.
            inputs: (0..24).map(|v| v as f32).collect(),
            labels: labels.to_vec(),
            names: (0..6).map(|k| format!("c{k}")).collect(),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        // As `adapt --top` keeps them: the chosen items split off, in their original order.
        let highest =
            |k, others, rng: &mut rand::rngs::StdRng| d.split(&highest_and_random(&d.labels, k, others, rng)).1;
        let top = highest(3, 0, &mut rng);
        assert_eq!(top.names, ["c1", "c3", "c4"]);
        assert_eq!(top.labels, [0.9, 0.7, 0.9]);
        let pixels: Vec<f32> = [1, 3, 4].iter().flat_map(|&k| (4 * k..4 * k + 4).map(|v| v as f32)).collect();
        assert_eq!(top.inputs, pixels);
        // A tie at the cut keeps the earlier item; asking for more than there are keeps all.
        assert_eq!(highest(1, 0, &mut rng).names, ["c1"]);
        assert_eq!(highest(9, 0, &mut rng).names.len(), 6);
        // Others come from the rest only, each once, and differ between draws.
        let mut drawn = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let kept = highest(2, 2, &mut rng);
            assert_eq!(kept.len(), 4);
            assert!(
                kept.names.contains(&"c1".to_string()) && kept.names.contains(&"c4".to_string()),
                "{:?}",
                kept.names
            );
            let mut rest: Vec<&String> = kept.names.iter().filter(|n| *n != "c1" && *n != "c4").collect();
            rest.dedup();
            assert_eq!(rest.len(), 2, "{:?}", kept.names);
            drawn.extend(rest.into_iter().cloned());
        }
        assert_eq!(drawn.len(), 4, "every one of the rest is drawn sometimes: {drawn:?}");
        assert_eq!(highest(2, 9, &mut rng).len(), 6);
    }

    /// Preparing a folder on all cores gives what pushing cutouts one by one gives, in order,
    /// whatever their sizes and scales (cropped, padded, resampled).
    #[test]
    fn push_all_is_push_one_by_one() {
        use crate::survey::fixtures::synthetic_cutout;
        let cutouts = [
            synthetic_cutout("a", 41, 1),
            synthetic_cutout("b", 25, 2),
            synthetic_cutout("c", 60, 3).with_pixel_scale(Some(0.1)),
            synthetic_cutout("d", 33, 4).with_pixel_scale(Some(0.263)),
        ];
        for size in [0, 33] {
            let mut one = Dataset::with_size(size);
            for (k, c) in cutouts.iter().enumerate() {
                one.push(c, k as f32, 50.0);
            }
            let mut all = Dataset::with_size(size);
            let items: Vec<(&Cutout, f32)> = cutouts.iter().enumerate().map(|(k, c)| (c, k as f32)).collect();
            all.push_all(&items[..2], 50.0);
            all.push_all(&items[2..], 50.0);
            assert_eq!((all.size, &all.labels, &all.names), (one.size, &one.labels, &one.names), "size {size}");
            assert!(all.inputs == one.inputs, "size {size}: the same inputs");
        }
    }

    #[test]
    fn identity_augmentation_is_the_identity_and_rotations_move_pixels() {
        let size = 9;
        let input: Vec<f32> = (0..4 * size * size).map(|k| k as f32).collect();
        let none = Augment { dihedral: true, ..Augment::none() };
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let mut seen_identity = false;
        let mut out = vec![0f32; input.len()];
        for _ in 0..40 {
            augment_into(&input, size, &none, &mut rng, &mut out);
            // Only 90-degree turns and flips: a permutation of each plane's pixels.
            for b in 0..4 {
                let mut a: Vec<i64> = input[b * 81..(b + 1) * 81].iter().map(|v| v.round() as i64).collect();
                let mut o: Vec<i64> = out[b * 81..(b + 1) * 81].iter().map(|v| v.round() as i64).collect();
                a.sort();
                o.sort();
                assert_eq!(a, o);
            }
            seen_identity |= out.iter().zip(&input).all(|(a, b)| (a - b).abs() < 1e-4);
        }
        assert!(seen_identity, "one of 8 symmetries is the identity");
    }

    #[test]
    fn dihedral_only_moves_pixels_without_resampling_them() {
        // Values that any interpolation would mix into new ones.
        let size = 11;
        let input: Vec<f32> = (0..4 * size * size).map(|k| ((k * 7919) % 1013) as f32 * 0.37 - 90.0).collect();
        let aug = Augment::dihedral_only();
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(9);
        let mut out = vec![0f32; input.len()];
        let mut orientations = std::collections::HashSet::new();
        for _ in 0..200 {
            augment_into(&input, size, &aug, &mut rng, &mut out);
            let n = size * size;
            for b in 0..4 {
                let mut a: Vec<u32> = input[b * n..(b + 1) * n].iter().map(|v| v.to_bits()).collect();
                let mut o: Vec<u32> = out[b * n..(b + 1) * n].iter().map(|v| v.to_bits()).collect();
                a.sort_unstable();
                o.sort_unstable();
                assert_eq!(a, o, "band {b}: every value kept bit for bit");
            }
            // Where the first pixel of the input went tells the orientation apart (with the
            // pixel beside it, which side it faces).
            let corner = out[..size * size].iter().position(|v| v.to_bits() == input[0].to_bits()).unwrap();
            let next = out[..size * size].iter().position(|v| v.to_bits() == input[1].to_bits()).unwrap();
            orientations.insert((corner, next));
        }
        assert_eq!(orientations.len(), 8, "all 8 rotations and flips are drawn");
    }

    #[test]
    fn colour_drop_leaves_one_grey_mix_with_the_noise_level_kept() {
        let size = 64;
        let n = size * size;
        // Independent unit noise in each band plus a source seen only in the reddest band.
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(11);
        let mut input: Vec<f32> = (0..4 * n)
            .map(|_| {
                let (u1, u2): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random_range(0.0..1.0));
                (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
            })
            .collect();
        input[3 * n + n / 2 + size / 2] += 50.0;
        let never = Augment { colour_drop: 0.0, ..Augment::none() };
        let always = Augment { colour_drop: 1.0, ..Augment::none() };
        let mut out = vec![0f32; input.len()];
        augment_into(&input, size, &never, &mut rng, &mut out);
        assert_eq!(out, input, "no colour drop: the cutout as it was");
        let mut grey_sd = Vec::new();
        for _ in 0..20 {
            augment_into(&input, size, &always, &mut rng, &mut out);
            for b in 1..4 {
                assert_eq!(out[b * n..(b + 1) * n], out[..n], "band {b} is the same mix as band 0");
            }
            // The source now shows in every band, at the weight the mix gave its band.
            let centre = n / 2 + size / 2;
            assert!(out[centre] > 0.0, "the i-band source shows through: {}", out[centre]);
            let mean = out[..n].iter().sum::<f32>() / n as f32;
            let var = out[..n].iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
            grey_sd.push(var.sqrt());
        }
        // One source pixel of 50 adds at most 50^2/4096 = 0.6 to the variance; the noise's sd
        // stays within a few per cent of 1 whatever the weights.
        for sd in &grey_sd {
            assert!((0.95..1.3).contains(sd), "sd of the grey mix {sd}");
        }
    }

    #[test]
    fn band_depth_jitter_fades_each_band_by_its_own_amount_and_keeps_unit_noise() {
        let size = 101;
        let n = size * size;
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(23);
        // Unit noise in every band, and a bright flat source of 20 sigma over the middle rows.
        let mut input = vec![0f32; 4 * n];
        crate::vmath::standard_normals(&mut rng, &mut input);
        let source = |p: usize| (40 * size..60 * size).contains(&p);
        for b in 0..4 {
            for p in 0..n {
                if source(p) {
                    input[b * n + p] += 20.0;
                }
            }
        }
        let off = Augment { band_depth_jitter_mag: 0.0, ..Augment::none() };
        let mut out = vec![0f32; 4 * n];
        augment_into(&input, size, &off, &mut rng, &mut out);
        assert_eq!(out, input, "no jitter: the cutout as it was");
        let on = Augment { band_depth_jitter_mag: 1.0, ..Augment::none() };
        let mut factors = Vec::new();
        for _ in 0..10 {
            augment_into(&input, size, &on, &mut rng, &mut out);
            for b in 0..4 {
                let plane = &out[b * n..(b + 1) * n];
                let sky: Vec<f32> = (0..n).filter(|&p| !source(p)).map(|p| plane[p]).collect();
                let mean = sky.iter().sum::<f32>() / sky.len() as f32;
                let sd = (sky.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / sky.len() as f32).sqrt();
                assert!((0.96..1.04).contains(&sd), "band {b}: sky sigma {sd}, want 1");
                let signal = (0..n).filter(|&p| source(p)).map(|p| plane[p]).sum::<f32>() / (20 * size) as f32;
                // The source keeps between 10^-0.4 = 0.40 and all of its 20 sigma.
                let k = signal / 20.0;
                assert!((0.38..1.02).contains(&k), "band {b}: kept {k} of the signal");
                factors.push(k);
            }
        }
        // Each band draws its own loss: the kept shares spread over the range, not one value.
        let (lo, hi) = factors.iter().fold((f32::MAX, f32::MIN), |(a, b), &k| (a.min(k), b.max(k)));
        assert!(hi - lo > 0.3, "kept shares from {lo} to {hi}");
    }

    #[test]
    fn noise_has_the_requested_scale() {
        let size = 64;
        let input = vec![0f32; 4 * size * size];
        let aug = Augment { max_noise: 0.3, ..Augment::none() };
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(5);
        let mut out = vec![0f32; input.len()];
        augment_into(&input, size, &aug, &mut rng, &mut out);
        let sd = (out.iter().map(|v| v * v).sum::<f32>() / out.len() as f32).sqrt();
        assert!(sd <= 0.32, "{sd}");
    }
}
