//! Colour maps for activation maps, and drawing a map over a composite.
//!
//! The map is inferno-like: piecewise-linear through eight anchors sampled from matplotlib's
//! inferno (black, purple, red, orange, pale yellow), which keeps lightness rising steadily so
//! that brighter always means more.

use super::Rgba8;

const INFERNO_ANCHORS: [[f32; 3]; 8] = [
    [0.0, 0.0, 4.0],
    [40.0, 11.0, 84.0],
    [101.0, 21.0, 110.0],
    [159.0, 42.0, 99.0],
    [212.0, 72.0, 66.0],
    [245.0, 125.0, 21.0],
    [250.0, 193.0, 39.0],
    [252.0, 255.0, 164.0],
];

/// The colour of `t` in [0, 1] (clamped).
pub fn inferno(t: f32) -> [u8; 3] {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let x = t * (INFERNO_ANCHORS.len() - 1) as f32;
    let k = (x.floor() as usize).min(INFERNO_ANCHORS.len() - 2);
    let f = x - k as f32;
    let (a, b) = (INFERNO_ANCHORS[k], INFERNO_ANCHORS[k + 1]);
    [0, 1, 2].map(|c| (a[c] + (b[c] - a[c]) * f).round() as u8)
}

/// Draws `map` (values in [0, 1], same size and orientation as `image`) over the image with
/// `opacity` scaled by the map's value, so that where the map is zero the image shows through.
pub fn overlay(image: &Rgba8, map: &[f32], opacity: f32) -> Rgba8 {
    let opacity = opacity.clamp(0.0, 1.0);
    let pixels = image
        .pixels
        .iter()
        .zip(map)
        .map(|(p, &m)| {
            let c = inferno(m);
            let a = opacity * m.clamp(0.0, 1.0).sqrt();
            let mix = |k: usize| (p[k] as f32 * (1.0 - a) + c[k] as f32 * a).round() as u8;
            [mix(0), mix(1), mix(2), 255]
        })
        .collect();
    Rgba8 { width: image.width, height: image.height, pixels }
}

/// Draws a signed map over the image: warm (red-orange to orange-yellow) where it is positive (evidence for
/// a lens), blue where negative (evidence against), opaque in proportion to |value| / `scale`
/// (full at `scale` and beyond), so that where the map is near zero the image shows through.
pub fn overlay_signed(image: &Rgba8, map: &[f32], scale: f32, opacity: f32) -> Rgba8 {
    let opacity = opacity.clamp(0.0, 1.0);
    let scale = if scale > 0.0 { scale } else { 1.0 };
    let pixels = image
        .pixels
        .iter()
        .zip(map)
        .map(|(p, &m)| {
            let t = if m.is_finite() { (m / scale).clamp(-1.0, 1.0) } else { 0.0 };
            let c = if t >= 0.0 { inferno(0.5 + 0.35 * t) } else { [40, 110 + (60.0 * -t) as u8, 255] };
            let a = opacity * t.abs().sqrt();
            let mix = |k: usize| (p[k] as f32 * (1.0 - a) + c[k] as f32 * a).round() as u8;
            [mix(0), mix(1), mix(2), 255]
        })
        .collect();
    Rgba8 { width: image.width, height: image.height, pixels }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inferno_runs_dark_to_bright() {
        let lum = |c: [u8; 3]| 0.2126 * c[0] as f32 + 0.7152 * c[1] as f32 + 0.0722 * c[2] as f32;
        let mut last = -1.0;
        for k in 0..=20 {
            let l = lum(inferno(k as f32 / 20.0));
            assert!(l > last, "lightness rises at {k}");
            last = l;
        }
        assert_eq!(inferno(-1.0), inferno(0.0));
        assert_eq!(inferno(f32::NAN), inferno(0.0));
    }

    #[test]
    fn overlay_leaves_zero_map_pixels_alone() {
        let img = Rgba8 { width: 2, height: 1, pixels: vec![[10, 20, 30, 255], [10, 20, 30, 255]] };
        let out = overlay(&img, &[0.0, 1.0], 0.8);
        assert_eq!(out.pixels[0], [10, 20, 30, 255]);
        assert_ne!(out.pixels[1], [10, 20, 30, 255]);
    }

    #[test]
    fn signed_overlay_is_warm_for_and_blue_against_and_clear_at_zero() {
        let grey = [100, 100, 100, 255];
        let img = Rgba8 { width: 4, height: 1, pixels: vec![grey; 4] };
        let out = overlay_signed(&img, &[0.0, 1.0, -1.0, 0.1], 0.5, 0.8);
        assert_eq!(out.pixels[0], grey, "no evidence: the image shows through");
        let [r, _, b, _] = out.pixels[1];
        assert!(r > 150 && b < 100, "for a lens: warm, got {:?}", out.pixels[1]);
        let [r, _, b, _] = out.pixels[2];
        assert!(b > 150 && r < 100, "against: blue, got {:?}", out.pixels[2]);
        // A weak value is drawn, but fainter than a saturated one (fixed scale, not per image).
        let d = |p: [u8; 4]| (p[0] as i32 - 100).abs() + (p[2] as i32 - 100).abs();
        assert!(d(out.pixels[3]) > 0 && d(out.pixels[3]) < d(out.pixels[1]));
    }
}
