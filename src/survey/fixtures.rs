//! Plain synthetic cutouts for tests and benchmarks: Gaussian sky noise and one elliptical
//! galaxy. Not a simulator of lenses (that is `sim`): only data with the right shape, units and
//! statistics to exercise reading, storing and drawing.

use crate::cutout::Cutout;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

/// A `size` x `size` cutout in KiDS-like flux units (ZP = 0, sky sigma ~1e-12), deterministic in
/// `seed`.
pub fn synthetic_cutout(name: &str, size: usize, seed: u64) -> Cutout {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let sky_sigma = [3.0e-12f32, 1.2e-12, 1.3e-12, 3.5e-12];
    let colour = [0.2f32, 0.6, 1.0, 1.4];
    let amp = rng.random_range(5.0..60.0) * 1e-12;
    let (cx, cy) = (size as f32 / 2.0 + rng.random_range(-2.0..2.0), size as f32 / 2.0 + rng.random_range(-2.0..2.0));
    let r_e = rng.random_range(2.0..6.0);
    let q: f32 = rng.random_range(0.5..1.0);
    let angle: f32 = rng.random_range(0.0..std::f32::consts::PI);
    let (s, c) = angle.sin_cos();
    let planes: [Vec<f32>; 4] = std::array::from_fn(|b| {
        let noise = Normal::new(0.0f32, sky_sigma[b]).expect("positive sigma");
        (0..size * size)
            .map(|k| {
                let (x, y) = ((k % size) as f32 - cx, (k / size) as f32 - cy);
                let (u, v) = (c * x + s * y, -s * x + c * y);
                let r2 = u * u + (v / q) * (v / q);
                amp * colour[b] * (-0.5 * r2 / (r_e * r_e)).exp() + noise.sample(&mut rng)
            })
            .collect()
    });
    Cutout::from_planes(name, size, size, planes)
}
