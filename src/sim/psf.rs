//! The point-spread function (Moffat) and convolution with it.
//!
//! # Formula
//! Moffat (1969): PSF(r) proportional to (1 + (r / alpha)^2)^(-beta), with
//! alpha = FWHM / (2 sqrt(2^(1/beta) - 1)). Ground-based seeing is well described by beta ~ 3
//! (wings wider than a Gaussian). The kernel is sampled 5 x 5 per pixel and normalised to sum 1.
//!
//! Convolution is done by FFT on a zero-padded square (no wrap-around), with one FFT plan per
//! size kept in a [`Convolver`].

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// Moffat's beta used for all bands (typical of ground-based seeing).
pub const MOFFAT_BETA: f64 = 3.0;

/// A normalised Moffat kernel of odd side `2 * half + 1` pixels.
pub fn moffat_kernel(fwhm_arcsec: f64, beta: f64, pixel_arcsec: f64, half: usize) -> Vec<f64> {
    let alpha = fwhm_arcsec / (2.0 * (2f64.powf(1.0 / beta) - 1.0).sqrt());
    let side = 2 * half + 1;
    let sub = 5;
    let mut k = vec![0.0; side * side];
    for j in 0..side {
        for i in 0..side {
            let mut s = 0.0;
            for sj in 0..sub {
                for si in 0..sub {
                    let x = (i as f64 - half as f64 + (si as f64 + 0.5) / sub as f64 - 0.5) * pixel_arcsec;
                    let y = (j as f64 - half as f64 + (sj as f64 + 0.5) / sub as f64 - 0.5) * pixel_arcsec;
                    s += (1.0 + (x * x + y * y) / (alpha * alpha)).powf(-beta);
                }
            }
            k[j * side + i] = s;
        }
    }
    let total: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= total);
    k
}

/// FFT convolution of `size` x `size` images with kernels of side up to `2 * half + 1`.
pub struct Convolver {
    size: usize,
    half: usize,
    n: usize,
    forward: Arc<dyn Fft<f64>>,
    inverse: Arc<dyn Fft<f64>>,
}

impl Convolver {
    pub fn new(size: usize, half: usize) -> Convolver {
        let n = (size + 2 * half).next_power_of_two();
        let mut planner = FftPlanner::new();
        Convolver { size, half, n, forward: planner.plan_fft_forward(n), inverse: planner.plan_fft_inverse(n) }
    }

    fn fft2(&self, data: &mut [Complex<f64>], fft: &Arc<dyn Fft<f64>>) {
        let n = self.n;
        let mut scratch = vec![Complex::default(); fft.get_inplace_scratch_len()];
        fft.process_with_scratch(data, &mut scratch);
        // Columns: transpose, transform rows, transpose back.
        let mut t = vec![Complex::default(); n * n];
        for r in 0..n {
            for c in 0..n {
                t[c * n + r] = data[r * n + c];
            }
        }
        fft.process_with_scratch(&mut t, &mut scratch);
        for r in 0..n {
            for c in 0..n {
                data[c * n + r] = t[r * n + c];
            }
        }
    }

    /// Convolves a `size` x `size` image with a kernel of side `2 * half + 1` (centred), keeping
    /// the image's size and alignment; flux spilling over the edges is lost, as on a detector.
    pub fn convolve(&self, image: &[f64], kernel: &[f64]) -> Vec<f64> {
        let (n, size, half) = (self.n, self.size, self.half);
        let side = 2 * half + 1;
        assert_eq!(kernel.len(), side * side, "kernel side");
        let mut a = vec![Complex::default(); n * n];
        for r in 0..size {
            for c in 0..size {
                a[r * n + c].re = image[r * size + c];
            }
        }
        // Kernel centred at (0, 0) with wrap-around, so the output is aligned with the input.
        let mut k = vec![Complex::default(); n * n];
        for j in 0..side {
            for i in 0..side {
                let r = (j + n - half) % n;
                let c = (i + n - half) % n;
                k[r * n + c].re = kernel[j * side + i];
            }
        }
        self.fft2(&mut a, &self.forward);
        self.fft2(&mut k, &self.forward);
        for (x, y) in a.iter_mut().zip(&k) {
            *x *= y;
        }
        self.fft2(&mut a, &self.inverse);
        let norm = 1.0 / (n * n) as f64;
        let mut out = vec![0.0; size * size];
        for r in 0..size {
            for c in 0..size {
                out[r * size + c] = a[r * n + c].re * norm;
            }
        }
        out
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
        for r in 0..size {
            for c in 0..size {
                let mut direct = 0.0;
                for j in 0..side {
                    for i in 0..side {
                        let (rr, cc) = (r as i64 + j as i64 - half as i64, c as i64 + i as i64 - half as i64);
                        if rr >= 0 && cc >= 0 && (rr as usize) < size && (cc as usize) < size {
                            direct += image[rr as usize * size + cc as usize] * kernel[(side - 1 - j) * side + (side - 1 - i)];
                        }
                    }
                }
                assert!((conv[r * size + c] - direct).abs() < 1e-12, "({r},{c})");
            }
        }
        // A source far from the edges keeps its flux.
        let mut one = vec![0.0; size * size];
        one[15 * size + 15] = 1.0;
        let s: f64 = Convolver::new(size, half).convolve(&one, &kernel).iter().sum();
        assert!((s - 1.0).abs() < 1e-12);
    }
}
