//! Scalar kernels of the network's fused operations, written so that loops over slices
//! vectorise (see [`crate::vmath`], which holds `exp` and the dispatcher [`simd`]).

pub(crate) use crate::vmath::{exp_nonpositive, simd};

/// ELU with alpha 1 of one value.
#[inline(always)]
pub(super) fn elu_scalar(z: f32) -> f32 {
    let negative = exp_nonpositive(z) - 1.0;
    if z > 0.0 {
        z
    } else {
        negative
    }
}

/// ELU's derivative from its output: 1 where the output is positive, else exp(z) = y + 1.
#[inline(always)]
pub(super) fn elu_grad_from_output(y: f32) -> f32 {
    if y > 0.0 {
        1.0
    } else {
        y + 1.0
    }
}

/// erf(z) by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7) on [`exp_nonpositive`]:
/// branch-free apart from the sign, so it vectorises where the library `erff` does not.
#[inline(always)]
pub(super) fn erf_approx(z: f32) -> f32 {
    let a = z.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_8) * t - 0.284_496_72) * t + 0.254_829_6) * t;
    let magnitude = 1.0 - poly * exp_nonpositive(-a * a);
    if z < 0.0 {
        -magnitude
    } else {
        magnitude
    }
}

/// Exact GELU, x * Phi(x), and its derivative Phi(x) + x * phi(x).
#[inline(always)]
pub(super) fn gelu_and_slope(x: f32) -> (f32, f32) {
    let cdf = 0.5 * (1.0 + erf_approx(x * std::f32::consts::FRAC_1_SQRT_2));
    let pdf = exp_nonpositive(-0.5 * x * x) * 0.398_942_3;
    (x * cdf, cdf + x * pdf)
}

/// A well-mixed 32-bit hash (two multiply-xorshift rounds): the counter-based random source
/// of [`dropout`], cheap enough to vectorise and to recompute in the backward pass.
#[inline(always)]
pub(super) fn mix32(mut v: u32) -> u32 {
    v ^= v >> 16;
    v = v.wrapping_mul(0x7feb_352d);
    v ^= v >> 15;
    v = v.wrapping_mul(0x846c_a68b);
    v ^= v >> 16;
    v
}

/// Whether element `i` survives a dropout with this seed: P(keep) = 1 - threshold / 2^32.
#[inline(always)]
pub(super) fn keeps(seed: [u32; 2], threshold: u32, i: u32) -> bool {
    mix32(mix32(i ^ seed[0]) ^ seed[1]) >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elu_and_its_gradient_from_the_output() {
        for &z in &[-30.0f32, -2.0, -0.5, -1e-6, 0.0, 1e-6, 0.5, 3.0] {
            let y = elu_scalar(z);
            let want = if z > 0.0 { z } else { z.exp() - 1.0 };
            assert!((y - want).abs() <= 1e-6 * want.abs().max(1.0), "elu({z}) = {y}, want {want}");
            let dwant = if z > 0.0 { 1.0 } else { z.exp() };
            assert!((elu_grad_from_output(y) - dwant).abs() < 1e-6, "elu'({z})");
        }
    }

    #[test]
    fn erf_and_gelu_slope_match_the_definitions() {
        // erf against a high-precision series (|z| <= 3) and its limits.
        let erf_series = |z: f64| {
            let (mut term, mut sum, mut k) = (z, z, 0.0);
            while term.abs() > 1e-17 {
                k += 1.0;
                term *= -z * z / k;
                sum += term / (2.0 * k + 1.0);
            }
            2.0 / std::f64::consts::PI.sqrt() * sum
        };
        let mut z = -3.0f64;
        while z <= 3.0 {
            let err = (erf_approx(z as f32) as f64 - erf_series(z)).abs();
            assert!(err < 3e-7, "erf({z}): error {err}");
            z += 0.01;
        }
        assert_eq!(erf_approx(9.0), 1.0);
        assert_eq!(erf_approx(-9.0), -1.0);
        // The slope is the derivative of the value (central differences).
        for &x in &[-4.0f32, -1.3, -0.2, 0.0, 0.4, 1.7, 5.0] {
            let h = 1e-2f32;
            let numeric = (gelu_and_slope(x + h).0 - gelu_and_slope(x - h).0) / (2.0 * h);
            assert!((numeric - gelu_and_slope(x).1).abs() < 2e-3, "slope at {x}");
        }
    }
}
