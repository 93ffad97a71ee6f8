//! Where a cutout of any size sits in a model's square input (SPEC 2.1: "other sizes must work
//! too").
//!
//! A model sees a fixed field: the size it was trained at (101 pixels for the shipped model),
//! with the object of interest at its centre. Surveys and simulators cut other sizes (64, 100,
//! 200 pixels, rectangles at tile edges), always around the object. So the centres are matched
//! pixel for pixel: a larger cutout is cropped around its centre, a smaller or non-square one is
//! padded with sky (0 after preprocessing, the value masked pixels get). Nothing is resampled:
//! the pixel scale is the model's to assume, and a cutout's size says nothing about it.
//!
//! Preprocessing runs on the whole cutout first, so its sky statistics use every pixel the
//! survey gave, not only those the model sees.

/// The placement of a `width` x `height` cutout in a `size` x `size` model input. Column `x` of
/// the cutout is column `x + dx` of the input, row `y` is row `y + dy`; the centre pixel (index
/// `n / 2` of each axis) lands on the input's centre pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub size: usize,
    pub width: usize,
    pub height: usize,
    dx: isize,
    dy: isize,
}

impl Placement {
    pub fn new(width: usize, height: usize, size: usize) -> Placement {
        let offset = |n: usize| (size / 2) as isize - (n / 2) as isize;
        Placement { size, width, height, dx: offset(width), dy: offset(height) }
    }

    /// True when the cutout is exactly the model's input, pixel for pixel.
    pub fn is_identity(&self) -> bool {
        self.width == self.size && self.height == self.size
    }

    /// For each input row or column (`n_out` of them), the matching range in the other frame:
    /// (first index in `out`, first index in `from`, length) of the overlap, if any.
    fn overlap(n_from: usize, n_out: usize, shift: isize) -> Option<(usize, usize, usize)> {
        // out index = from index + shift
        let out_start = shift.max(0);
        let from_start = (-shift).max(0);
        let len = (n_out as isize - out_start).min(n_from as isize - from_start);
        (len > 0).then_some((out_start as usize, from_start as usize, len as usize))
    }

    /// Copies `planes` (bands of `from_w` x `from_h`, band-major) into bands of `out_w` x
    /// `out_h`, shifted by (`dx`, `dy`); what no source pixel covers is 0.
    fn shift(
        planes: &[f32],
        (from_w, from_h): (usize, usize),
        (out_w, out_h): (usize, usize),
        dx: isize,
        dy: isize,
    ) -> Vec<f32> {
        let (n_from, n_out) = (from_w * from_h, out_w * out_h);
        let bands = planes.len().checked_div(n_from).unwrap_or(0);
        let mut out = vec![0.0; bands * n_out];
        let (Some((ox, fx, w)), Some((oy, fy, h))) =
            (Self::overlap(from_w, out_w, dx), Self::overlap(from_h, out_h, dy))
        else {
            return out;
        };
        for b in 0..bands {
            for r in 0..h {
                let src = b * n_from + (fy + r) * from_w + fx;
                let dst = b * n_out + (oy + r) * out_w + ox;
                out[dst..dst + w].copy_from_slice(&planes[src..src + w]);
            }
        }
        out
    }

    /// Preprocessed planes of the cutout (any number of bands, each `width * height`) as the
    /// model's input: each band `size * size`, sky (0) where the cutout does not reach.
    pub fn to_model(&self, planes: &[f32]) -> Vec<f32> {
        Self::shift(planes, (self.width, self.height), (self.size, self.size), self.dx, self.dy)
    }

    /// A map in the model's frame (`size * size`, e.g. an activation map) on the cutout's
    /// pixels: 0 where the model did not look.
    pub fn to_cutout(&self, map: &[f32]) -> Vec<f32> {
        Self::shift(map, (self.size, self.size), (self.width, self.height), -self.dx, -self.dy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plane whose every pixel says where it came from: value = 1000 * row + column + 1.
    fn labelled(width: usize, height: usize) -> Vec<f32> {
        (0..height).flat_map(|r| (0..width).map(move |c| (1000 * r + c + 1) as f32)).collect()
    }

    #[test]
    fn the_same_size_is_copied_unchanged() {
        let p = Placement::new(7, 7, 7);
        assert!(p.is_identity());
        let plane = labelled(7, 7);
        assert_eq!(p.to_model(&plane), plane);
        assert_eq!(p.to_cutout(&plane), plane);
    }

    #[test]
    fn a_larger_cutout_is_cropped_around_its_centre() {
        // 200 wide: centre pixel 100 lands on the model's 50; the model sees columns 50..151.
        let p = Placement::new(200, 200, 101);
        let m = p.to_model(&labelled(200, 200));
        assert_eq!(m.len(), 101 * 101);
        assert_eq!(m[50 * 101 + 50], (1000 * 100 + 100 + 1) as f32, "centre on centre");
        assert_eq!(m[0], (1000 * 50 + 50 + 1) as f32, "first pixel the model sees");
        assert_eq!(m[101 * 101 - 1], (1000 * 150 + 150 + 1) as f32, "last pixel the model sees");
        assert!(m.iter().all(|&v| v > 0.0), "nothing padded");
    }

    #[test]
    fn a_smaller_cutout_is_padded_with_sky_around_it() {
        let p = Placement::new(64, 64, 101);
        let m = p.to_model(&labelled(64, 64));
        // Centre 32 on 50: the cutout occupies rows and columns 18..82.
        assert_eq!(m[50 * 101 + 50], (1000 * 32 + 32 + 1) as f32);
        assert_eq!(m[18 * 101 + 18], 1.0, "the cutout's first pixel");
        assert_eq!(m[81 * 101 + 81], (1000 * 63 + 63 + 1) as f32, "its last");
        assert_eq!(m.iter().filter(|&&v| v != 0.0).count(), 64 * 64, "every pixel once, the rest sky");
        assert_eq!(m[17 * 101 + 50], 0.0);
        assert_eq!(m[82 * 101 + 50], 0.0);
    }

    #[test]
    fn a_rectangle_is_cropped_one_way_and_padded_the_other_band_by_band() {
        let (w, h) = (150, 40);
        let mut planes = labelled(w, h);
        planes.extend(labelled(w, h).iter().map(|v| -v));
        let p = Placement::new(w, h, 101);
        let m = p.to_model(&planes);
        assert_eq!(m.len(), 2 * 101 * 101);
        // Columns: 75 on 50, so model column 0 is cutout column 25. Rows: 20 on 50, from row 30.
        assert_eq!(m[30 * 101], (25 + 1) as f32);
        assert_eq!(m[101 * 101 + 30 * 101], -((25 + 1) as f32), "the second band in its own plane");
        assert_eq!(m[29 * 101 + 50], 0.0);
        assert_eq!(m[70 * 101], 0.0, "below the cutout's last row (69)");
        assert_eq!(m[..101 * 101].iter().filter(|&&v| v != 0.0).count(), 101 * 40);
    }

    #[test]
    fn maps_go_back_to_the_pixels_they_were_computed_on() {
        for (w, h) in [(200, 200), (64, 64), (150, 40), (101, 101), (100, 102)] {
            let p = Placement::new(w, h, 101);
            let plane = labelled(w, h);
            let back = p.to_cutout(&p.to_model(&plane));
            assert_eq!(back.len(), w * h);
            for (k, (&b, &orig)) in back.iter().zip(&plane).enumerate() {
                assert!(b == orig || b == 0.0, "{w}x{h} pixel {k}: {b} is neither itself nor unseen");
            }
            let seen = back.iter().filter(|&&v| v != 0.0).count();
            assert_eq!(seen, w.min(101) * h.min(101), "{w}x{h}: what the model saw comes back");
        }
    }
}
