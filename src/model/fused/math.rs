//! Scalar kernels written so that loops over slices vectorise: no library calls, no branches
//! beyond selects; and [`simd`], which compiles such a loop for the widest vectors the CPU has.

/// Runs `f` compiled for AVX-512 or for AVX2 + FMA when the CPU has them, else as built (SSE2 on
/// x86-64). The program is built for any x86-64, so without this every loop of the fused kernels
/// ran 4 lanes wide. No floating-point contraction is allowed either way, so every path gives
/// the same bits.
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has every feature `with_avx512` is compiled for.
            return unsafe { with_avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above, for AVX2 and FMA.
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `exp(x)` for `x <= 0` (larger values are clamped to 0): Cody-Waite range reduction and a
/// degree-6 polynomial, within 2 ulp of `f32::exp`. No branches and no library call, so a loop
/// over a slice vectorises (the library `expf` does not).
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 0.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let exponent = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((exponent + 127) as u32) << 23)
}

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
    fn exp_matches_the_library_within_two_ulp_over_the_negative_range() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let (want, got) = (x.exp() as f64, exp_nonpositive(x) as f64);
            worst = worst.max(((got - want) / want).abs());
            x += 0.000_37;
        }
        assert!(worst < 2.5e-7, "largest relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(5.0), 1.0, "positive inputs are clamped to 0");
        assert!(exp_nonpositive(-200.0) < 1e-37);
    }

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
