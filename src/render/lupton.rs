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
}
