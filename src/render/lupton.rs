//! The Lupton et al. (2004) asinh colour composite, computed exactly as astropy's
//! `make_lupton_rgb(r, g, b, minimum, stretch, Q)` (astropy.visualization.lupton_rgb).
//!
//! # Formula
//! With x' = x - minimum per channel and I = (R' + G' + B') / 3:
//! f(I) = asinh(Q I / stretch) * slope, slope = frac * 255 / asinh(frac Q), frac = 0.1;
//! each channel becomes x' f(I) / I (0 where I <= 0), negative values are set to 0; where the
//! largest channel is at least 255 all three are multiplied by 255 / largest; then cast to 8 bits
//! by truncation, as numpy's `astype(np.uint8)` does.
//!
//! Accuracy: computed in f64 like astropy; `tests` check every value of
//! `shared/reference/lupton_rgb.json` (astropy's own output) to within 1 count.

/// Parameters of the Lupton mapping, in the units of the images passed in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LuptonParams {
    pub q: f64,
    pub stretch: f64,
    /// Black level subtracted from (R, G, B) before anything else.
    pub minimum: [f64; 3],
}

impl LuptonParams {
    pub fn new(q: f64, stretch: f64, minimum: f64) -> LuptonParams {
        LuptonParams { q, stretch, minimum: [minimum; 3] }
    }
}

const FRAC: f64 = 0.1;
const U8_MAX: f64 = 255.0;

/// The precomputed constants of astropy's `AsinhMapping`.
#[derive(Debug, Clone, Copy)]
struct AsinhMapping {
    slope: f64,
    soften: f64,
    minimum: [f64; 3],
}

impl AsinhMapping {
    fn new(p: &LuptonParams) -> AsinhMapping {
        // astropy: Q below float32 epsilon becomes 0.1; above 1e10 is capped.
        let eps = 1.0 / (1u64 << 23) as f64;
        let q = if p.q.abs() < eps { 0.1 } else { p.q.min(1e10) };
        AsinhMapping { slope: FRAC * U8_MAX / (FRAC * q).asinh(), soften: q / p.stretch, minimum: p.minimum }
    }

    #[inline]
    fn pixel(&self, r: f64, g: f64, b: f64) -> [u8; 3] {
        let r = r - self.minimum[0];
        let g = g - self.minimum[1];
        let b = b - self.minimum[2];
        let i = (r + g + b) / 3.0;
        let fac = if i <= 0.0 { 0.0 } else { (i * self.soften).asinh() * self.slope / i };
        let mut c = [r * fac, g * fac, b * fac];
        for v in c.iter_mut() {
            if *v < 0.0 {
                *v = 0.0;
            }
        }
        // astropy picks the largest channel with strict comparisons; the result is the maximum.
        let max = if c[0] > c[1] {
            if c[0] > c[2] {
                c[0]
            } else {
                c[2]
            }
        } else if c[1] > c[2] {
            c[1]
        } else {
            c[2]
        };
        let mut out = [0u8; 3];
        for (o, v) in out.iter_mut().zip(c) {
            let v = if max >= U8_MAX { v * U8_MAX / max } else { v };
            // numpy's float -> uint8 cast truncates; NaN (from NaN input) becomes 0 here.
            *o = if v.is_nan() { 0 } else { v.clamp(0.0, U8_MAX) as u8 };
        }
        out
    }
}

/// Makes the 8-bit RGB composite of three images of equal length (any layout; the output has the
/// same pixel order, 3 bytes per pixel).
pub fn lupton_rgb<T: Copy + Into<f64>>(r: &[T], g: &[T], b: &[T], params: &LuptonParams) -> Vec<u8> {
    assert!(r.len() == g.len() && g.len() == b.len(), "channels must have equal length");
    let m = AsinhMapping::new(params);
    let mut out = Vec::with_capacity(3 * r.len());
    for k in 0..r.len() {
        out.extend_from_slice(&m.pixel(r[k].into(), g[k].into(), b[k].into()));
    }
    out
}

/// Natural logarithm for `y >= 1` in f32 without branches or divisions, so that the loop calling
/// it vectorises: y = m 2^e with m in [sqrt(1/2), sqrt(2)), and ln(m) = ln(1 + t) by a degree-8
/// polynomial in t = m - 1 (Chebyshev fit; absolute error 3.4e-8 over the interval).
#[inline(always)]
fn ln_ge1(y: f32) -> f32 {
    const C: [f32; 9] = [
        2.861_100_6e-8,
        0.999_999_9,
        -0.500_009_4,
        0.333_357_1,
        -0.249_521_28,
        0.198_828_03,
        -0.174_059_12,
        0.163_658_8,
        -0.098_423_53,
    ];
    let bits = y.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > std::f32::consts::SQRT_2;
    m = if big { m * 0.5 } else { m };
    e += big as i32;
    let t = m - 1.0;
    let mut p = C[8];
    for &c in C[..8].iter().rev() {
        p = p * t + c;
    }
    e as f32 * std::f32::consts::LN_2 + p
}

/// asinh(x) for x >= 0 in f32, branch-free: a Taylor series (to x^7) below 0.2, where
/// ln(x + sqrt(x^2 + 1)) would lose digits; ln(2x) above 1e8, where x^2 would lose the +1; the
/// log form in between. Relative error below 2e-6 (tested over 20 decades).
#[inline(always)]
fn asinh_nonneg(x: f32) -> f32 {
    let x2 = x * x;
    let small = x * (1.0 - x2 * (1.0 / 6.0 - x2 * (3.0 / 40.0 - x2 * (15.0 / 336.0))));
    let arg = if x > 1e8 { 2.0 * x } else { x + (x2 + 1.0).sqrt() };
    let large = ln_ge1(arg.max(1.0));
    if x < 0.2 {
        small
    } else {
        large
    }
}

/// The composite of three f32 planes, each multiplied by its `scale` first (unit conversion and
/// colour weights folded into one factor): the fast path the program draws with. Returns RGBA
/// (alpha 255), 4 bytes per pixel: what GPUs and egui take, and one 32-bit store per pixel.
///
/// Same mapping as [`lupton_rgb`] but in f32 with [`asinh_nonneg`]; agrees with it (and so with
/// astropy) to within 1 count, which the tests check on the astropy reference and on random data.
pub fn lupton_rgb_f32(r: &[f32], g: &[f32], b: &[f32], scale: [f32; 3], params: &LuptonParams) -> Vec<[u8; 4]> {
    assert!(r.len() == g.len() && g.len() == b.len(), "channels must have equal length");
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has just been checked to support AVX-512F.
        return unsafe { lupton_kernel_avx512(r, g, b, scale, params) };
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has just been checked to support AVX2 and FMA.
        return unsafe { lupton_kernel_avx2(r, g, b, scale, params) };
    }
    lupton_kernel(r, g, b, scale, params)
}

/// The kernel compiled for AVX-512 (16 lanes), where the CPU has it; the binary still runs on any
/// x86-64.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn lupton_kernel_avx512(
    r: &[f32],
    g: &[f32],
    b: &[f32],
    scale: [f32; 3],
    params: &LuptonParams,
) -> Vec<[u8; 4]> {
    lupton_kernel(r, g, b, scale, params)
}

/// The kernel compiled for AVX2 + FMA (8 lanes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn lupton_kernel_avx2(r: &[f32], g: &[f32], b: &[f32], scale: [f32; 3], params: &LuptonParams) -> Vec<[u8; 4]> {
    lupton_kernel(r, g, b, scale, params)
}

const BLOCK: usize = 64;

/// Truncates a value in [0, 255] to a byte like numpy's cast, without the saturating float-to-int
/// conversion (which does not vectorise well): floor, then read the integer from the mantissa of
/// floor(v) + 2^23.
#[inline(always)]
fn to_byte(v: f32) -> u8 {
    ((v.clamp(0.0, 255.0).floor() + 8_388_608.0).to_bits() & 0xff) as u8
}

struct BlockConsts {
    scale: [f32; 3],
    min: [f32; 3],
    slope: f32,
    soften: f32,
}

/// One block of pixels to packed RGBA words. A plain `fn` with `inline(always)` (not a closure),
/// so that it is compiled with the caller's target features.
#[inline(always)]
fn lupton_block(c: &BlockConsts, rs: &[f32; BLOCK], gs: &[f32; BLOCK], bs: &[f32; BLOCK], out: &mut [[u8; 4]; BLOCK]) {
    for k in 0..BLOCK {
        let rr = rs[k] * c.scale[0] - c.min[0];
        let gg = gs[k] * c.scale[1] - c.min[1];
        let bb = bs[k] * c.scale[2] - c.min[2];
        let i = (rr + gg + bb) * (1.0 / 3.0);
        let fac = if i > 0.0 { asinh_nonneg(i * c.soften) * c.slope / i } else { 0.0 };
        // f32::max maps NaN to 0 here, like the reference path's cast.
        let (cr, cg, cb) = ((rr * fac).max(0.0), (gg * fac).max(0.0), (bb * fac).max(0.0));
        let max = cr.max(cg).max(cb);
        let k_sat = if max >= 255.0 { 255.0 / max } else { 1.0 };
        out[k] = [to_byte(cr * k_sat), to_byte(cg * k_sat), to_byte(cb * k_sat), 255];
    }
}

#[inline(always)]
fn lupton_kernel(r: &[f32], g: &[f32], b: &[f32], scale: [f32; 3], params: &LuptonParams) -> Vec<[u8; 4]> {
    let m = AsinhMapping::new(params);
    let (slope, soften) = (m.slope as f32, m.soften as f32);
    let min = [m.minimum[0] as f32, m.minimum[1] as f32, m.minimum[2] as f32];
    let n = r.len();
    let mut out = vec![[0u8; 4]; n];
    // Fixed-size blocks written in place: a constant trip count and one 32-bit store per pixel,
    // so the loop vectorises. The tail is padded into a block of zeros.
    let k = BlockConsts { scale, min, slope, soften };
    let full = n / BLOCK * BLOCK;
    for (start, o) in (0..full).step_by(BLOCK).zip(out.chunks_exact_mut(BLOCK)) {
        let end = start + BLOCK;
        let blocks = (r[start..end].try_into(), g[start..end].try_into(), b[start..end].try_into(), o.try_into());
        if let (Ok(rb), Ok(gb), Ok(bb), Ok(ob)) = blocks {
            lupton_block(&k, rb, gb, bb, ob);
        }
    }
    if full < n {
        let pad = |p: &[f32]| {
            let mut a = [0f32; BLOCK];
            a[..n - full].copy_from_slice(&p[full..]);
            a
        };
        let mut tail = [[0u8; 4]; BLOCK];
        lupton_block(&k, &pad(r), &pad(g), &pad(b), &mut tail);
        out[full..].copy_from_slice(&tail[..n - full]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        minimum: f64,
        stretch: f64,
        #[serde(rename = "Q")]
        q: f64,
        r: Vec<f64>,
        g: Vec<f64>,
        b: Vec<f64>,
        rgb_u8: serde_json::Value,
    }

    fn flatten(v: &serde_json::Value, out: &mut Vec<i64>) {
        match v {
            serde_json::Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
            serde_json::Value::Number(n) => out.push(n.as_i64().expect("integer")),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn matches_astropy_reference_within_one_count() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/lupton_rgb.json");
        let text = std::fs::read_to_string(path).expect("shared/reference/lupton_rgb.json beside the repo");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
        let cases: Vec<Case> = serde_json::from_value(doc["cases"].clone()).expect("cases");
        assert!(!cases.is_empty());
        for case in cases {
            let got = lupton_rgb(&case.r, &case.g, &case.b, &LuptonParams::new(case.q, case.stretch, case.minimum));
            let mut want = Vec::new();
            flatten(&case.rgb_u8, &mut want);
            assert_eq!(got.len(), want.len(), "{}", case.name);
            let worst = got.iter().zip(&want).map(|(&a, &b)| (a as i64 - b).abs()).max().unwrap_or(0);
            assert!(worst <= 1, "{}: off by {worst} counts", case.name);
        }
    }

    #[test]
    fn saturated_pixels_keep_their_colour() {
        // A very bright red-ish pixel: the largest channel is pinned at 255 (or 254 by
        // truncation) and the ratios between channels are kept.
        let out = lupton_rgb(&[1000.0f64], &[500.0], &[250.0], &LuptonParams::new(8.0, 0.1, 0.0));
        assert!(out[0] >= 254);
        assert!((out[1] as f64 - 127.5).abs() <= 1.0);
        assert!((out[2] as f64 - 63.75).abs() <= 1.0);
    }

    #[test]
    fn non_positive_intensity_is_black() {
        assert_eq!(lupton_rgb(&[-1.0f64], &[0.5], &[0.2], &LuptonParams::new(8.0, 5.0, 0.0)), vec![0, 0, 0]);
        assert_eq!(lupton_rgb(&[f64::NAN], &[1.0], &[1.0], &LuptonParams::new(8.0, 5.0, 0.0)), vec![0, 0, 0]);
    }
    fn rgb_of(rgba: &[[u8; 4]]) -> Vec<u8> {
        assert!(rgba.iter().all(|p| p[3] == 255), "opaque");
        rgba.iter().flat_map(|p| [p[0], p[1], p[2]]).collect()
    }

    #[test]
    fn fast_path_matches_astropy_reference_and_exact_path() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/lupton_rgb.json");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("reference")).expect("json");
        let cases: Vec<Case> = serde_json::from_value(doc["cases"].clone()).expect("cases");
        for case in cases {
            let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
            let p = LuptonParams::new(case.q, case.stretch, case.minimum);
            let got = rgb_of(&lupton_rgb_f32(&f(&case.r), &f(&case.g), &f(&case.b), [1.0; 3], &p));
            let mut want = Vec::new();
            flatten(&case.rgb_u8, &mut want);
            let worst = got.iter().zip(&want).map(|(&a, &b)| (a as i64 - b).abs()).max().unwrap_or(0);
            assert!(worst <= 1, "{}: off by {worst}", case.name);
        }
        // Random data over many decades, with scales, against the f64 path.
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 0.3
        };
        let n = 20_000;
        let planes: Vec<Vec<f32>> =
            (0..3).map(|_| (0..n).map(|k| (next() * 10f64.powi(k % 9 - 3)) as f32).collect()).collect();
        let scale = [0.7f32, 1.3, 2.1];
        for p in
            [LuptonParams::new(8.0, 5.0, 0.0), LuptonParams::new(1.0, 0.3, -0.2), LuptonParams::new(20.0, 50.0, 0.1)]
        {
            let fast = rgb_of(&lupton_rgb_f32(&planes[0], &planes[1], &planes[2], scale, &p));
            let scaled: Vec<Vec<f64>> =
                (0..3).map(|c| planes[c].iter().map(|&v| (v * scale[c]) as f64).collect()).collect();
            let exact = lupton_rgb(&scaled[0], &scaled[1], &scaled[2], &p);
            let worst = fast.iter().zip(&exact).map(|(&a, &b)| (a as i32 - b as i32).abs()).max().unwrap_or(0);
            assert!(worst <= 1, "{p:?}: off by {worst}");
            // The portable kernel (what a CPU without AVX runs) agrees too.
            let portable = rgb_of(&lupton_kernel(&planes[0], &planes[1], &planes[2], scale, &p));
            let worst = portable.iter().zip(&exact).map(|(&a, &b)| (a as i32 - b as i32).abs()).max().unwrap_or(0);
            assert!(worst <= 1, "portable {p:?}: off by {worst}");
        }
    }

    #[test]
    fn fast_asinh_is_accurate_over_many_decades() {
        for k in -80..=120 {
            let x = 10f64.powf(k as f64 / 10.0);
            let got = asinh_nonneg(x as f32) as f64;
            let want = x.asinh();
            assert!((got - want).abs() <= 2e-6 * want, "x = {x}: {got} vs {want}");
        }
    }
}
