//! Elementary functions written so that a loop over a slice vectorises (no library calls, no
//! branches beyond selects), and [`simd`], which compiles such a loop for the widest vectors the
//! CPU has. The network's fused operations and the simulator's light profiles share them: the C
//! library's `expf`, `powf` and `logf` are one value per call, and were a fifth of the
//! simulator's time.

/// Runs `f` compiled for AVX-512 or for AVX2 + FMA when the CPU has them, else as built (SSE2 on
/// x86-64). The program is built for any x86-64, so without this every loop of the fused kernels
/// ran 4 lanes wide. No floating-point contraction is allowed either way, so every path gives
/// the same bits.
///
/// Mark the closure `#[inline(always)]` (and whatever it calls with a loop): a closure that is
/// not inlined into the wide-vector wrapper is compiled on its own, for baseline x86-64, and the
/// wrapper only jumps to it. Nine of the thirteen call sites were like that until 2026-12-03.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
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
    exp_in_range(x.clamp(-87.0, 0.0))
}

/// `exp(x)` over the whole f32 range (below -87 it returns ~1e-38, above 88 it saturates at
/// e^88): [`exp_nonpositive`] without its upper clamp at 0.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    exp_in_range(x.clamp(-87.0, 88.0))
}

/// The shared kernel of [`exp`] and [`exp_nonpositive`], for `x` in [-87, 88] (outside it the
/// exponent bits overflow).
#[inline(always)]
fn exp_in_range(x: f32) -> f32 {
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
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

/// Natural logarithm of `x > 0` (zero, negative and subnormal inputs are taken as the smallest
/// normal f32, whose logarithm is -87.3): x = m 2^e with m in [sqrt(1/2), sqrt(2)), then
/// ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, by its series to s^9. Within 2 ulp of
/// `f32::ln` away from x = 1 and within 1e-7 absolute near it.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let x = x.max(f32::MIN_POSITIVE);
    let bits = x.to_bits();
    let mut e = ((bits >> 23) as i32 - 127) as f32;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let high = m > std::f32::consts::SQRT_2;
    m = if high { m * 0.5 } else { m };
    e = if high { e + 1.0 } else { e };
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    e * std::f32::consts::LN_2 + 2.0 * s * series
}

/// `x^y` for `x >= 0` as exp(y ln x) (0^y is ~0 for y > 0). The relative error grows with
/// |y ln x| (f32 rounds the product: 2.5e-7 (1 + |y ln x|), against the library's 1 ulp); light
/// profiles under sky noise need far less.
#[inline(always)]
pub fn pow(x: f32, y: f32) -> f32 {
    exp(y * ln(x))
}

/// atan(z) in f32 without library calls: |z| > 1 folds to pi/2 - atan(1/z), then
/// t > tan(pi/8) to pi/4 + atan((t - 1) / (t + 1)), leaving |t| <= tan(pi/8) = 0.414 for the
/// Taylor series to t^21 (the next term is below 2e-10). Within 2e-7 relative of
/// `f64::atan`: for the lens's deflections, whose f32 positions carry 6e-8 relative anyway.
#[inline(always)]
pub fn atan(z: f32) -> f32 {
    use std::f32::consts::{FRAC_PI_2, FRAC_PI_4};
    const TAN_PI_8: f32 = 0.414_213_57;
    let a = z.abs();
    let inverted = a > 1.0;
    let a = if inverted { 1.0 / a } else { a };
    let shifted = a > TAN_PI_8;
    let t = if shifted { (a - 1.0) / (a + 1.0) } else { a };
    let t2 = t * t;
    let mut series = 1.0 / 21.0;
    for k in (0..10).rev() {
        series = series * -t2 + 1.0 / (2 * k + 1) as f32;
    }
    let mut r = t * series;
    r = if shifted { FRAC_PI_4 + r } else { r };
    r = if inverted { FRAC_PI_2 - r } else { r };
    r.copysign(z)
}

/// atanh(z) for |z| < 1 in f32: its series to z^17 where |z| < 1/4 (the next term is below
/// 1e-12 relative), else ln((1 + z) / (1 - z)) / 2 with [`ln`]. The series keeps the relative
/// error at a few 1e-7 near 0, where 1 + z in f32 would lose the digits of a small z (a nearly
/// round lens divides by e = sqrt(1 - q^2), so those digits are its whole deflection).
#[inline(always)]
pub fn atanh(z: f32) -> f32 {
    let z2 = z * z;
    let mut series = 1.0 / 17.0;
    for k in (0..8).rev() {
        series = series * z2 + 1.0 / (2 * k + 1) as f32;
    }
    let small = z * series;
    let large = 0.5 * ln((1.0 + z) / (1.0 - z));
    if z.abs() < 0.25 {
        small
    } else {
        large
    }
}

/// Two independent standard normal deviates per 64 random bits, in f32, for every element of
/// `out`: the Box-Muller transform, vectorised. The first half of `out` takes the cosine of each
/// pair, the second half the sine, so both halves are plain lane-wise loops. Sky noise is most of
/// a simulated cutout's random numbers (40,000 and more per cutout); one ziggurat draw in f64
/// per pixel was an eighth of the simulator's time.
///
/// Bits of each word: 24 for the radius's uniform (never 0, so the tail ends at 5.9 sigma, a
/// value 1 pixel in 3e8 would exceed), 24 for an angle in [-pi/4, pi/4) by its series (error
/// below 1e-8), and 3 for swapping the pair and their signs, which spread that angle over the
/// whole circle.
pub fn standard_normals(rng: &mut impl rand::Rng, out: &mut [f32]) {
    const CHUNK: usize = 512;
    let mut words = [0u64; CHUNK];
    for block in out.chunks_mut(2 * CHUNK) {
        let pairs = block.len().div_ceil(2);
        words[..pairs].iter_mut().for_each(|w| *w = rng.next_u64());
        if block.len() % 2 == 0 {
            simd(
                #[inline(always)]
                || normals_from_words(&words[..pairs], block),
            );
        } else {
            let mut even = [0f32; 2 * CHUNK];
            let even = &mut even[..2 * pairs];
            simd(
                #[inline(always)]
                || normals_from_words(&words[..pairs], even),
            );
            block.copy_from_slice(&even[..block.len()]);
        }
    }
}

/// The transform of [`standard_normals`]: `words.len()` pairs into `out` (twice as long).
#[inline(always)]
fn normals_from_words(words: &[u64], out: &mut [f32]) {
    const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
    let (cosines, sines) = out.split_at_mut(words.len());
    for ((&w, c), s) in words.iter().zip(cosines).zip(sines) {
        let u = ((w >> 40) as f32 + 0.5) * SCALE;
        let t = (((w >> 16) & 0x00ff_ffff) as f32 + 0.5) * SCALE;
        let r = (-2.0 * ln(u)).sqrt();
        let a = std::f32::consts::FRAC_PI_4 * (2.0 * t - 1.0);
        let a2 = a * a;
        let sin = a * (1.0 - a2 / 6.0 * (1.0 - a2 / 20.0 * (1.0 - a2 / 42.0 * (1.0 - a2 / 72.0))));
        let cos = 1.0 - a2 / 2.0 * (1.0 - a2 / 12.0 * (1.0 - a2 / 30.0 * (1.0 - a2 / 56.0 * (1.0 - a2 / 90.0))));
        let (x, y) = ((r * cos).to_bits(), (r * sin).to_bits());
        let swap = 0u32.wrapping_sub((w & 1) as u32);
        let (x, y) = ((x & !swap) | (y & swap), (y & !swap) | (x & swap));
        *c = f32::from_bits(x ^ (((w >> 1) & 1) as u32) << 31);
        *s = f32::from_bits(y ^ (((w >> 2) & 1) as u32) << 31);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_atan_and_atanh_are_within_a_few_1e_7_relative_of_the_library_in_f64() {
        let (mut worst_atan, mut worst_atanh) = (0.0f64, 0.0f64);
        // Small, near the folds (tan(pi/8), 1), large; and atanh's switch at 1/4 and its
        // approach to 1 (a lens of axis ratio 0.2 reaches z = 0.98).
        let mut z = -30.0f32;
        while z <= 30.0 {
            for v in [z, z * 1e-4] {
                let want = (v as f64).atan();
                worst_atan = worst_atan.max(((atan(v) as f64 - want) / want).abs());
            }
            z += 0.000_73;
        }
        let mut z = -0.99f32;
        while z <= 0.99 {
            for v in [z, z * 1e-5] {
                let want = (v as f64).atanh();
                worst_atanh = worst_atanh.max(((atanh(v) as f64 - want) / want).abs());
            }
            z += 0.000_031;
        }
        assert!(worst_atan < 2e-7, "atan: largest relative error {worst_atan}");
        assert!(worst_atanh < 6e-7, "atanh: largest relative error {worst_atanh}");
        assert_eq!(atan(0.0), 0.0);
        assert_eq!(atanh(0.0), 0.0);
    }

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
    fn exp_matches_the_library_over_the_whole_range() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let (want, got) = (x.exp() as f64, exp(x) as f64);
            worst = worst.max(((got - want) / want).abs());
            x += 0.000_71;
        }
        assert!(worst < 2.5e-7, "largest relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(1000.0).is_finite() && exp(-1000.0) >= 0.0);
    }

    #[test]
    fn ln_matches_the_library_from_the_smallest_normal_to_the_largest_float() {
        let (mut worst_rel, mut worst_abs) = (0.0f64, 0.0f64);
        // Every 97th float from the smallest normal up: all exponents, many mantissas.
        let mut bits = f32::MIN_POSITIVE.to_bits();
        while bits < f32::MAX.to_bits() {
            let x = f32::from_bits(bits);
            let (want, got) = ((x as f64).ln(), ln(x) as f64);
            let err = (got - want).abs();
            if want.abs() > 0.1 {
                worst_rel = worst_rel.max(err / want.abs());
            } else {
                worst_abs = worst_abs.max(err);
            }
            bits += 97;
        }
        assert!(worst_rel < 2.5e-7, "largest relative error {worst_rel}");
        assert!(worst_abs < 1.5e-7, "largest absolute error near x = 1: {worst_abs}");
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), ln(f32::MIN_POSITIVE), "zero is the smallest normal");
    }

    #[test]
    fn pow_matches_the_library_where_light_profiles_use_it() {
        // Sersic profiles raise R / r_e (1e-3 to 1e3) to 1 / n (n from 0.3 to 10).
        // The bound scales with |y ln x|: f32 rounds that product (and x and y themselves).
        let mut worst = 0.0f64;
        for i in 0..2000 {
            let x = 10f64.powf(-3.0 + 6.0 * i as f64 / 1999.0);
            for y in [0.1, 0.25, 0.5, 1.0, 2.0, 1.0 / 0.3] {
                let (xf, yf) = (x as f32, y as f32);
                let want = (xf as f64).powf(yf as f64);
                let got = pow(xf, yf) as f64;
                let scaled = ((got - want) / want).abs() / (1.0 + (yf as f64 * (xf as f64).ln()).abs());
                worst = worst.max(scaled);
            }
        }
        assert!(worst < 2.5e-7, "largest relative error per unit of |y ln x| + 1: {worst}");
    }
    #[test]
    fn standard_normals_have_the_normal_distribution_and_no_correlation() {
        use rand::SeedableRng;
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(17);
        // An odd length: the last pair's second value is dropped, the rest are used.
        let n = 2_000_001;
        let mut z = vec![0f32; n];
        standard_normals(&mut rng, &mut z);
        let z: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        let kurtosis = z.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n as f64 / (var * var);
        // Standard errors at n = 2e6: mean 7e-4, variance 1e-3, kurtosis 3.5e-3.
        assert!(mean.abs() < 4e-3, "mean {mean}");
        assert!((var - 1.0).abs() < 5e-3, "variance {var}");
        assert!((kurtosis - 3.0).abs() < 2e-2, "kurtosis {kurtosis}");
        // The distribution function at a few points against Phi (values to 7 digits); the
        // standard error of a share at n = 2e6 is below 3.6e-4.
        for (x, phi) in [
            (-3.0, 0.001_349_9),
            (-1.5, 0.066_807_2),
            (-0.3, 0.382_088_6),
            (0.0, 0.5),
            (0.7, 0.758_036_3),
            (2.2, 0.986_096_6),
        ] {
            let share = z.iter().filter(|&&v| v <= x).count() as f64 / n as f64;
            assert!((share - phi).abs() < 1.5e-3, "P(z <= {x}) = {share}, want {phi}");
        }
        // Neighbours, the two values made from one word (i and i + half a block) and the halves'
        // signs are independent.
        let corr = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / a.len() as f64;
        assert!(corr(&z[..n - 1], &z[1..]).abs() < 4e-3, "lag-1 correlation");
        assert!(corr(&z[..512], &z[512..1024]).abs() < 0.2, "one word's pair");
        let pairs: Vec<(f64, f64)> = (0..n / 1024).map(|k| (z[k * 1024], z[k * 1024 + 512])).collect();
        let r2: f64 = pairs.iter().map(|(a, b)| a * a * b * b).sum::<f64>() / pairs.len() as f64;
        assert!((r2 - 1.0).abs() < 0.25, "E[x^2 y^2] of a pair {r2}");
        let quadrants = pairs.iter().filter(|(a, b)| *a > 0.0 && *b > 0.0).count() as f64 / pairs.len() as f64;
        assert!((quadrants - 0.25).abs() < 0.06, "share of pairs in the first quadrant {quadrants}");
        assert!(z.iter().all(|v| v.is_finite() && v.abs() < 6.0), "the tail ends at 5.9 sigma");
    }
}
