//! The point-spread function (Moffat) and convolution with it.
//!
//! # Formula
//! Moffat (1969): PSF(r) proportional to (1 + (r / alpha)^2)^(-beta), with
//! alpha = FWHM / (2 sqrt(2^(1/beta) - 1)). Ground-based seeing is well described by beta ~ 3
//! (wings wider than a Gaussian). The kernel is sampled 5 x 5 per pixel and normalised to sum 1.
//!
//! Convolution is done by FFT on a zero-padded square (no wrap-around), with one FFT plan per
//! size kept in a [`Convolver`].

use crate::vmath;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// Moffat's beta used for all bands (typical of ground-based seeing).
pub const MOFFAT_BETA: f64 = 3.0;

/// A normalised round Moffat kernel of odd side `2 * half + 1` pixels (see [`psf_kernel`]).
pub fn moffat_kernel(fwhm_arcsec: f64, beta: f64, pixel_arcsec: f64, half: usize) -> Vec<f64> {
    psf_kernel(&PsfShape::round(fwhm_arcsec, beta), pixel_arcsec, half)
}

/// One band's PSF: an elliptical Moffat, possibly off the pixel centre (bands of a coadd are
/// never registered perfectly).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsfShape {
    pub fwhm_arcsec: f64,
    pub beta: f64,
    /// 1 - b/a; the FWHM is that of the circle of the same area.
    pub ellipticity: f64,
    pub angle_rad: f64,
    /// Offset of the centre, pixels (x, y).
    pub offset_px: (f64, f64),
}

impl PsfShape {
    pub fn round(fwhm_arcsec: f64, beta: f64) -> PsfShape {
        PsfShape { fwhm_arcsec, beta, ellipticity: 0.0, angle_rad: 0.0, offset_px: (0.0, 0.0) }
    }
}

/// A normalised PSF kernel of odd side `2 * half + 1` pixels. Pixels within 3 of the centre are
/// integrated on a 5 x 5 grid, the smooth wings sampled at pixel centres.
pub fn psf_kernel(shape: &PsfShape, pixel_arcsec: f64, half: usize) -> Vec<f64> {
    let beta = shape.beta;
    let alpha = shape.fwhm_arcsec / (2.0 * (2f64.powf(1.0 / beta) - 1.0).sqrt());
    let q = (1.0 - shape.ellipticity).clamp(0.05, 1.0);
    let (sin, cos) = shape.angle_rad.sin_cos();
    let side = 2 * half + 1;
    // Every sample's offset from the centre in the order the pixels sum them; then, in wide
    // vectors, each one's 1 + (r / alpha)^2 and all the powers (f32: 1e-6 relative, and the
    // kernel is normalised afterwards).
    let mut dxs: Vec<f64> = Vec::with_capacity(side * side + 49 * 24);
    let mut dys: Vec<f64> = Vec::with_capacity(side * side + 49 * 24);
    let mut subs: Vec<usize> = Vec::with_capacity(side * side);
    for j in 0..side {
        for i in 0..side {
            let near = (i as i64 - half as i64).abs() <= 3 && (j as i64 - half as i64).abs() <= 3;
            let sub = if near { 5 } else { 1 };
            for sj in 0..sub {
                for si in 0..sub {
                    dxs.push(i as f64 - half as f64 + (si as f64 + 0.5) / sub as f64 - 0.5 - shape.offset_px.0);
                    dys.push(j as f64 - half as f64 + (sj as f64 + 0.5) / sub as f64 - 0.5 - shape.offset_px.1);
                }
            }
            subs.push(sub);
        }
    }
    let mut bases = vec![0.0f32; dxs.len()];
    let inv_alpha2 = 1.0 / (alpha * alpha);
    vmath::simd(
        #[inline(always)]
        || {
            for ((b, &dx), &dy) in bases.iter_mut().zip(&dxs).zip(&dys) {
                let (x, y) = (dx * pixel_arcsec, dy * pixel_arcsec);
                let (u, v) = (cos * x + sin * y, -sin * x + cos * y);
                *b = (1.0 + (q * u * u + v * v / q) * inv_alpha2) as f32;
            }
        },
    );
    let mut powers = vec![0.0f32; bases.len()];
    let exponent = -beta as f32;
    vmath::simd(
        #[inline(always)]
        || {
            for (p, &b) in powers.iter_mut().zip(&bases) {
                *p = vmath::pow(b, exponent);
            }
        },
    );
    let mut k = Vec::with_capacity(side * side);
    let mut at = 0;
    for sub in subs {
        let n = sub * sub;
        k.push(powers[at..at + n].iter().map(|&p| p as f64).sum::<f64>() / n as f64);
        at += n;
    }
    let total: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= total);
    k
}

/// FFT convolution of `size` x `size` images with kernels of side up to `2 * half + 1`.
///
/// Spectra are kept transposed (the layout after row then column transforms), which saves two
/// transposes per convolution; rows known to be zero (padding, and all but a kernel's few rows)
/// are not transformed; and two real images (or kernels) share one complex transform, their
/// spectra separated by Hermitian symmetry: with A = F(x + i y), X(k) = (A(k) + conj A(-k)) / 2,
/// Y(k) = (A(k) - conj A(-k)) / 2i. Buffers live in a per-thread [`Workspace`], so a simulation
/// neither allocates nor zeroes its n x n planes.
///
/// The transforms are in f32 (twice the lanes of f64): their round-off is ~1e-7 of the image's
/// brightest pixel, spread over the image, far below the sky noise even beside a saturated star.
pub struct Convolver {
    size: usize,
    half: usize,
    n: usize,
    forward: Arc<dyn Fft<f32>>,
    inverse: Arc<dyn Fft<f32>>,
}

/// A kernel's spectrum in the [`Convolver`]'s (transposed) layout.
pub type Spectrum = Vec<Complex<f32>>;

/// The n x n planes and FFT scratch one convolution needs, kept per thread between calls.
#[derive(Default)]
struct Workspace {
    /// The padded input; rows a transform skips must be zero on entry.
    data: Vec<Complex<f32>>,
    /// The transposed spectrum.
    spectrum: Vec<Complex<f32>>,
    /// The product of spectra, transformed back in place.
    product: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
}

impl Workspace {
    /// Sizes every plane for an n x n transform; `data` comes back all zero.
    fn ready(&mut self, n: usize, scratch: usize) {
        for plane in [&mut self.data, &mut self.spectrum, &mut self.product] {
            if plane.len() != n * n {
                *plane = vec![Complex::default(); n * n];
            }
        }
        self.data.fill(Complex::default());
        if self.scratch.len() < scratch {
            self.scratch = vec![Complex::default(); scratch];
        }
    }
}

thread_local! {
    static WORKSPACE: std::cell::RefCell<Workspace> = std::cell::RefCell::new(Workspace::default());
}

/// Row `r` of an n x n spectrum paired with its Hermitian partners: (A(k), conj A(-k)) for each
/// column, the partner of column c being column (n - c) mod n of row (n - r) mod n. Column 0 is
/// its own partner; the rest of the partner row is read backwards, which keeps the loops that
/// use it in wide vectors.
#[inline(always)]
fn partners(a: &[Complex<f32>], n: usize, r: usize) -> impl Iterator<Item = (Complex<f32>, Complex<f32>)> + '_ {
    let (row, partner) = (&a[r * n..][..n], &a[((n - r) % n) * n..][..n]);
    let rest = row[1..].iter().zip(partner[1..].iter().rev()).map(|(&ak, &mk)| (ak, mk.conj()));
    std::iter::once((row[0], partner[0].conj())).chain(rest)
}

impl Convolver {
    pub fn new(size: usize, half: usize) -> Convolver {
        let n = (size + 2 * half).next_power_of_two();
        let mut planner = FftPlanner::new();
        Convolver { size, half, n, forward: planner.plan_fft_forward(n), inverse: planner.plan_fft_inverse(n) }
    }

    fn scratch_len(&self) -> usize {
        self.forward.get_inplace_scratch_len().max(self.inverse.get_inplace_scratch_len())
    }

    /// Forward 2-D transform of `data` into `out`, transposed. Only the rows in `rows` are
    /// transformed along their length: the others must be zero (their transform is zero).
    fn forward2(
        &self,
        data: &mut [Complex<f32>],
        rows: impl IntoIterator<Item = std::ops::Range<usize>>,
        out: &mut [Complex<f32>],
        scratch: &mut [Complex<f32>],
    ) {
        let n = self.n;
        for r in rows {
            self.forward.process_with_scratch(&mut data[r.start * n..r.end * n], scratch);
        }
        transpose::transpose(data, out, n, n);
        self.forward.process_with_scratch(out, scratch);
    }

    /// Inverse of [`Convolver::forward2`] of `t` (overwritten) into `out`, computing only the
    /// first `rows` output rows.
    fn inverse2(&self, t: &mut [Complex<f32>], rows: usize, out: &mut [Complex<f32>], scratch: &mut [Complex<f32>]) {
        let n = self.n;
        self.inverse.process_with_scratch(t, scratch);
        transpose::transpose(t, out, n, n);
        self.inverse.process_with_scratch(&mut out[..rows * n], scratch);
    }

    fn kernel_buffer(&self, kernel: &[f64], into_imag: bool, buf: &mut [Complex<f32>]) {
        let (n, half) = (self.n, self.half);
        let side = 2 * half + 1;
        assert_eq!(kernel.len(), side * side, "kernel side");
        // Centred at (0, 0) with wrap-around, so the output is aligned with the input.
        for j in 0..side {
            for i in 0..side {
                let v = &mut buf[((j + n - half) % n) * n + (i + n - half) % n];
                if into_imag {
                    v.im = kernel[j * side + i] as f32;
                } else {
                    v.re = kernel[j * side + i] as f32;
                }
            }
        }
    }

    /// The spectra of several kernels (side `2 * half + 1`, centred), two per transform.
    pub fn spectra(&self, kernels: &[Vec<f64>]) -> Vec<Spectrum> {
        let (n, half) = (self.n, self.half);
        // A centred kernel wraps around: its rows are the first half + 1 and the last half.
        let rows = [0..half + 1, n - half..n];
        WORKSPACE.with_borrow_mut(|w| {
            let mut out = Vec::with_capacity(kernels.len());
            for pair in kernels.chunks(2) {
                w.ready(n, self.scratch_len());
                self.kernel_buffer(&pair[0], false, &mut w.data);
                if let Some(second) = pair.get(1) {
                    self.kernel_buffer(second, true, &mut w.data);
                }
                self.forward2(&mut w.data, rows.clone(), &mut w.spectrum, &mut w.scratch);
                let (mut x, mut y) = (vec![Complex::default(); n * n], vec![Complex::default(); n * n]);
                let a = &w.spectrum;
                let split = |a: Complex<f32>, m: Complex<f32>| ((a + m) * 0.5, (a - m) * Complex::new(0.0, -0.5));
                vmath::simd(
                    #[inline(always)]
                    || {
                        for r in 0..n {
                            let (xr, yr) = (&mut x[r * n..][..n], &mut y[r * n..][..n]);
                            for ((xo, yo), (ak, mk)) in xr.iter_mut().zip(yr.iter_mut()).zip(partners(a, n, r)) {
                                (*xo, *yo) = split(ak, mk);
                            }
                        }
                    },
                );
                out.push(x);
                if pair.len() == 2 {
                    out.push(y);
                }
            }
            out
        })
    }

    /// The spectrum of one kernel.
    pub fn spectrum(&self, kernel: &[f64]) -> Spectrum {
        self.spectra(&[kernel.to_vec()]).swap_remove(0)
    }

    /// Convolves images, each with its own kernel spectrum, two per transform pair. Output keeps
    /// each image's size and alignment; flux spilling over the edges is lost, as on a detector.
    /// Zero padding to at least `size + 2 * half` means no wrap-around.
    pub fn apply_many(&self, images: &[&[f64]], spectra: &[&Spectrum]) -> Vec<Vec<f64>> {
        assert_eq!(images.len(), spectra.len());
        let (n, size) = (self.n, self.size);
        WORKSPACE.with_borrow_mut(|w| {
            w.ready(n, self.scratch_len());
            let mut out = Vec::with_capacity(images.len());
            for (imgs, specs) in images.chunks(2).zip(spectra.chunks(2)) {
                // Rows from `size` on stay zero (no transform writes them); the first `size`
                // rows are rewritten whole, padding columns included.
                for r in 0..size {
                    let row = &mut w.data[r * n..(r + 1) * n];
                    for (c, v) in row.iter_mut().enumerate() {
                        *v = if c < size {
                            Complex::new(
                                imgs[0][r * size + c] as f32,
                                imgs.get(1).map_or(0.0, |second| second[r * size + c] as f32),
                            )
                        } else {
                            Complex::default()
                        };
                    }
                }
                self.forward2(&mut w.data, std::iter::once(0..size), &mut w.spectrum, &mut w.scratch);
                let a = &w.spectrum;
                if imgs.len() == 2 {
                    // The two images' spectra, each times its kernel's, recombined as x + i y:
                    // with X = (A + M) / 2 and Y = (A - M) / 2i (M = conj A(-k)), X S0 + i Y S1 =
                    // ((A + M) S0 + (A - M) S1) / 2. Row by row over slices, the partner row
                    // read backwards, so that the loop compiles to wide vectors.
                    let combine = |a: Complex<f32>, m: Complex<f32>, s0: Complex<f32>, s1: Complex<f32>| {
                        ((a + m) * s0 + (a - m) * s1) * 0.5
                    };
                    let product = &mut w.product;
                    vmath::simd(
                        #[inline(always)]
                        || {
                            for r in 0..n {
                                let (s0, s1) = (&specs[0][r * n..][..n], &specs[1][r * n..][..n]);
                                let out = product[r * n..][..n].iter_mut().zip(partners(a, n, r));
                                for ((o, (ak, mk)), (&k0, &k1)) in out.zip(s0.iter().zip(s1)) {
                                    *o = combine(ak, mk, k0, k1);
                                }
                            }
                        },
                    );
                } else {
                    for ((z, p), q) in w.product.iter_mut().zip(a.iter()).zip(specs[0].iter()) {
                        *z = p * q;
                    }
                }
                self.inverse2(&mut w.product, size, &mut w.data, &mut w.scratch);
                let norm = 1.0 / (n * n) as f32;
                for part in 0..imgs.len() {
                    let mut o = Vec::with_capacity(size * size);
                    for r in 0..size {
                        o.extend(
                            w.data[r * n..r * n + size]
                                .iter()
                                .map(|v| (if part == 0 { v.re } else { v.im } * norm) as f64),
                        );
                    }
                    out.push(o);
                }
                // The inverse filled every row; the next pair's transform skips those past `size`.
                w.data[size * n..].fill(Complex::default());
            }
            out
        })
    }

    /// Convolves one image with a kernel given by its spectrum.
    pub fn apply(&self, image: &[f64], spectrum: &Spectrum) -> Vec<f64> {
        self.apply_many(&[image], &[spectrum]).swap_remove(0)
    }

    /// Convolution with a kernel given directly (computes its spectrum each time).
    pub fn convolve(&self, image: &[f64], kernel: &[f64]) -> Vec<f64> {
        self.apply(image, &self.spectrum(kernel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moffat_kernel_sums_to_one_and_has_the_requested_fwhm() {
        let k = moffat_kernel(0.85, MOFFAT_BETA, 0.2, 12);
        let total: f64 = k.iter().sum();
        assert!((total - 1.0).abs() < 1e-12);
        // The profile through the centre falls to half its peak at FWHM / 2 (checked on the
        // continuous function the kernel samples).
        let alpha = 0.85 / (2.0 * (2f64.powf(1.0 / MOFFAT_BETA) - 1.0).sqrt());
        let at = |r: f64| (1.0 + r * r / (alpha * alpha)).powf(-MOFFAT_BETA);
        assert!((at(0.425) - 0.5).abs() < 1e-12);
        // Symmetric.
        let side = 25;
        for j in 0..side {
            for i in 0..side {
                assert!((k[j * side + i] - k[i * side + j]).abs() < 1e-15);
                assert!((k[j * side + i] - k[(side - 1 - j) * side + (side - 1 - i)]).abs() < 1e-15);
            }
        }
    }

    #[test]
    fn convolution_matches_direct_sum_and_conserves_flux() {
        let size = 31;
        let half = 5;
        let kernel = moffat_kernel(1.0, MOFFAT_BETA, 0.2, half);
        let mut image = vec![0.0; size * size];
        image[15 * size + 15] = 1.0;
        image[3 * size + 20] = 2.5;
        image[10 * size + 4] = -0.7;
        let conv = Convolver::new(size, half).convolve(&image, &kernel);
        let side = 2 * half + 1;
        // The transforms are f32: round-off ~1e-7 of the largest input value, spread everywhere
        // (an error in the method, a wrong shift or a wrap-around, is of the order of the values).
        let tol = 1e-6 * 6.0;
        for r in 0..size {
            for c in 0..size {
                let mut direct = 0.0;
                for j in 0..side {
                    for i in 0..side {
                        let (rr, cc) = (r as i64 + j as i64 - half as i64, c as i64 + i as i64 - half as i64);
                        if rr >= 0 && cc >= 0 && (rr as usize) < size && (cc as usize) < size {
                            direct += image[rr as usize * size + cc as usize]
                                * kernel[(side - 1 - j) * side + (side - 1 - i)];
                        }
                    }
                }
                assert!((conv[r * size + c] - direct).abs() < tol, "({r},{c}): {} vs {direct}", conv[r * size + c]);
            }
        }
        // Two images with two kernels in one transform give the same as one at a time.
        let other_kernel = moffat_kernel(0.6, MOFFAT_BETA, 0.2, half);
        let other: Vec<f64> = (0..size * size).map(|k| ((k * 7919) % 13) as f64 - 6.0).collect();
        let conv = Convolver::new(size, half);
        let spectra = conv.spectra(&[kernel.clone(), other_kernel.clone()]);
        let both = conv.apply_many(&[&image, &other], &[&spectra[0], &spectra[1]]);
        let single_a = conv.convolve(&image, &kernel);
        let single_b = conv.convolve(&other, &other_kernel);
        for k in 0..size * size {
            assert!((both[0][k] - single_a[k]).abs() < tol && (both[1][k] - single_b[k]).abs() < tol, "{k}");
        }
        // A source far from the edges keeps its flux.
        let mut one = vec![0.0; size * size];
        one[15 * size + 15] = 1.0;
        let s: f64 = Convolver::new(size, half).convolve(&one, &kernel).iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "flux {s}");
    }
}

#[cfg(test)]
mod shape_tests {
    use super::*;

    fn centroid(k: &[f64], half: usize) -> (f64, f64) {
        let side = 2 * half + 1;
        let (mut x, mut y) = (0.0, 0.0);
        for j in 0..side {
            for i in 0..side {
                x += k[j * side + i] * (i as f64 - half as f64);
                y += k[j * side + i] * (j as f64 - half as f64);
            }
        }
        (x, y)
    }

    #[test]
    fn offset_moves_the_centre_and_ellipticity_stretches_along_the_angle() {
        let half = 13;
        let round = psf_kernel(&PsfShape::round(0.8, 3.0), 0.2, half);
        assert_eq!(round, moffat_kernel(0.8, 3.0, 0.2, half));
        let (x, y) = centroid(&round, half);
        assert!(x.abs() < 1e-9 && y.abs() < 1e-9);
        let shifted = psf_kernel(&PsfShape { offset_px: (0.3, -0.2), ..PsfShape::round(0.8, 3.0) }, 0.2, half);
        let (x, y) = centroid(&shifted, half);
        assert!((x - 0.3).abs() < 0.02 && (y + 0.2).abs() < 0.02, "centroid ({x}, {y})");
        // Elongated along x (angle 0): more light along the row than along the column.
        let flat = psf_kernel(&PsfShape { ellipticity: 0.1, ..PsfShape::round(0.8, 3.0) }, 0.2, half);
        let side = 2 * half + 1;
        let at = |i: usize, j: usize| flat[j * side + i];
        assert!(at(half + 3, half) > 1.05 * at(half, half + 3));
        assert!((flat.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
