//! Lens mass: the singular isothermal ellipsoid (SIE) plus external shear, and ray shooting.
//!
//! # Formula
//! Convergence, in the lens frame (major axis along x), with the "intermediate axis"
//! normalisation so that `theta_e` is the Einstein radius for any axis ratio `q`:
//! kappa(x, y) = theta_e / (2 sqrt(q x^2 + y^2 / q)).
//! Deflection (Kormann et al. 1994; Keeton 2001 with core s = 0, written for kappa =
//! b / (2 sqrt(q^2 x^2 + y^2))), with b = theta_e sqrt(q),
//! psi = sqrt(q^2 x^2 + y^2), e = sqrt(1 - q^2):
//! alpha_x = (b / e) atan(e x / psi),   alpha_y = (b / e) atanh(e y / psi).
//! External shear (gamma1, gamma2): alpha += (gamma1 x + gamma2 y, gamma2 x - gamma1 y).
//!
//! Tests check the circular limit against the SIS closed forms (image positions and signed
//! magnifications) and the q = 0.6 deflection against a direct numerical integral of kappa.

use crate::vmath;

/// An SIE with external shear. Angles in arcsec; `angle_rad` is the major axis's position angle
/// from +x towards +y.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SieShear {
    pub theta_e: f64,
    pub q: f64,
    pub angle_rad: f64,
    pub center: (f64, f64),
    pub gamma1: f64,
    pub gamma2: f64,
}

/// The smallest axis ratio whose rays are shot in f32. atanh's argument reaches e = sqrt(1 -
/// q^2), where its slope 1 / (1 - e^2) = 1 / q^2 multiplies f32's rounding: 6x at q = 0.4 (errors
/// below 1e-6 arcsec), 10^6 at q = 0.001. The simulator draws q >= 0.5.
const F32_MIN_Q: f64 = 0.4;

/// [`SieShear::ray_shoot`] with the lens frame's rotation computed once.
pub struct RayShooter<'a> {
    lens: &'a SieShear,
    frame: (f64, f64),
}

impl RayShooter<'_> {
    /// The source-plane position of an image-plane position: beta = theta - alpha(theta).
    pub fn ray_shoot(&self, x: f64, y: f64) -> (f64, f64) {
        let (ax, ay) = self.lens.deflection_in_frame(self.frame, x, y);
        (x - ax, y - ay)
    }

    /// [`RayShooter::ray_shoot`] of every (xs[k], ys[k]) into (bxs[k], bys[k]), as a few simple
    /// passes over the points that each compile to wide vectors ([`vmath`]'s `atan` and `atanh`
    /// instead of the library's, which take one value per call). The deflection is computed in
    /// f32 from offsets taken in f64 (so a ray's error is ~1e-7 of the Einstein radius, 1e-6 of
    /// a pixel, whatever the position's size) and added back in f64. In f64 the SIE's `atan`,
    /// `atanh`, square roots and divisions were 27 % of a simulated lens on an AVX2 desktop
    /// (Zen 1), half as many lanes per vector as f32 and twice the series terms. Lenses flatter
    /// than [`F32_MIN_Q`] (which the simulator never draws) are shot one ray at a time in f64.
    pub fn ray_shoot_many(&self, xs: &[f64], ys: &[f64], bxs: &mut [f64], bys: &mut [f64]) {
        assert!(ys.len() == xs.len() && bxs.len() == xs.len() && bys.len() == xs.len(), "point counts");
        if self.lens.q >= F32_MIN_Q {
            self.shoot_f32(xs, ys, bxs, bys)
        } else {
            for k in 0..xs.len() {
                (bxs[k], bys[k]) = self.ray_shoot(xs[k], ys[k]);
            }
        }
    }

    /// The f32 passes of [`RayShooter::ray_shoot_many`].
    fn shoot_f32(&self, xs: &[f64], ys: &[f64], bxs: &mut [f64], bys: &mut [f64]) {
        let n = xs.len();
        let lens = self.lens;
        let (s, c) = self.frame;
        let q = lens.q.clamp(1e-3, 1.0);
        let b = lens.theta_e * q.sqrt();
        let e2 = 1.0 - q * q;
        let sis = e2 < 1e-8;
        let e = e2.sqrt();
        let (cx, cy, g1, g2) = (lens.center.0, lens.center.1, lens.gamma1, lens.gamma2);
        // The SIS deflection is b (x, y) / psi; the SIE's functions take e (x, y) / psi.
        let numerator = if sis { b } else { e } as f32;
        let (s32, c32, q32) = (s as f32, c as f32, q as f32);
        let (mut axs, mut ays) = (vec![0.0f32; n], vec![0.0f32; n]);
        // Pass 1: the lens-frame arguments of atan and atanh (or the SIS deflection itself); as
        // in the scalar form, the centre (psi = 0) is deflected by nothing.
        // The offsets go to f32 in a loop of their own: one loop that reads f64 is vectorised 4
        // f64 wide, and its f32 square roots and divisions would run in 4 lanes instead of 8.
        vmath::simd(
            #[inline(always)]
            || {
                for k in 0..n {
                    axs[k] = (xs[k] - cx) as f32;
                    ays[k] = (ys[k] - cy) as f32;
                }
                for (ax, ay) in axs.iter_mut().zip(ays.iter_mut()) {
                    let (dx, dy) = (*ax, *ay);
                    let (xl, yl) = (c32 * dx + s32 * dy, -s32 * dx + c32 * dy);
                    let psi = (q32 * q32 * xl * xl + yl * yl).sqrt();
                    let scale = if psi == 0.0 { 0.0 } else { numerator / psi };
                    *ax = scale * xl;
                    *ay = scale * yl;
                }
            },
        );
        // Passes 2 and 3: the SIE's functions, each alone in its loop (|e y / psi| <= e <= 0.92).
        if !sis {
            let pre = (b / e) as f32;
            vmath::simd(
                #[inline(always)]
                || {
                    for v in axs.iter_mut() {
                        *v = pre * vmath::atan(*v);
                    }
                },
            );
            vmath::simd(
                #[inline(always)]
                || {
                    for v in ays.iter_mut() {
                        *v = pre * vmath::atanh(*v);
                    }
                },
            );
        }
        // Pass 4, in f64: back to the sky frame, the shear, and beta = theta - alpha.
        vmath::simd(
            #[inline(always)]
            || {
                for k in 0..n {
                    let (dx, dy) = (xs[k] - cx, ys[k] - cy);
                    let (axl, ayl) = (axs[k] as f64, ays[k] as f64);
                    let (ax, ay) = (c * axl - s * ayl, s * axl + c * ayl);
                    bxs[k] = xs[k] - (ax + g1 * dx + g2 * dy);
                    bys[k] = ys[k] - (ay + g2 * dx - g1 * dy);
                }
            },
        );
    }
}

impl SieShear {
    pub fn sis(theta_e: f64) -> SieShear {
        SieShear { theta_e, q: 1.0, angle_rad: 0.0, center: (0.0, 0.0), gamma1: 0.0, gamma2: 0.0 }
    }

    /// Deflection angle at image-plane position (x, y).
    pub fn deflection(&self, x: f64, y: f64) -> (f64, f64) {
        self.deflection_in_frame(self.angle_rad.sin_cos(), x, y)
    }

    /// The lens map with the frame's sine and cosine taken once, for the simulator's per-pixel
    /// loops (`sin_cos` per ray was 5 % of a simulated cutout).
    pub fn shooter(&self) -> RayShooter<'_> {
        RayShooter { lens: self, frame: self.angle_rad.sin_cos() }
    }

    fn deflection_in_frame(&self, (s, c): (f64, f64), x: f64, y: f64) -> (f64, f64) {
        let (dx, dy) = (x - self.center.0, y - self.center.1);
        // Into the lens frame.
        let (xl, yl) = (c * dx + s * dy, -s * dx + c * dy);
        let (axl, ayl) = sie_deflection_lens_frame(self.theta_e, self.q, xl, yl);
        let (ax, ay) = (c * axl - s * ayl, s * axl + c * ayl);
        (ax + self.gamma1 * dx + self.gamma2 * dy, ay + self.gamma2 * dx - self.gamma1 * dy)
    }

    /// The source-plane position of an image-plane position: beta = theta - alpha(theta).
    pub fn ray_shoot(&self, x: f64, y: f64) -> (f64, f64) {
        self.shooter().ray_shoot(x, y)
    }

    /// Signed magnification at (x, y), from the Jacobian of the lens map by central differences.
    pub fn magnification(&self, x: f64, y: f64) -> f64 {
        let h = 1e-5;
        let (bx1, by1) = self.ray_shoot(x + h, y);
        let (bx0, by0) = self.ray_shoot(x - h, y);
        let (cx1, cy1) = self.ray_shoot(x, y + h);
        let (cx0, cy0) = self.ray_shoot(x, y - h);
        let a11 = (bx1 - bx0) / (2.0 * h);
        let a21 = (by1 - by0) / (2.0 * h);
        let a12 = (cx1 - cx0) / (2.0 * h);
        let a22 = (cy1 - cy0) / (2.0 * h);
        1.0 / (a11 * a22 - a12 * a21)
    }
}

/// SIE deflection in the lens frame. Near q = 1 the closed form is 0/0; there the SIS limit
/// (to second order in e) is used.
fn sie_deflection_lens_frame(theta_e: f64, q: f64, x: f64, y: f64) -> (f64, f64) {
    let q = q.clamp(1e-3, 1.0);
    let b = theta_e * q.sqrt();
    let psi = (q * q * x * x + y * y).sqrt();
    if psi == 0.0 {
        return (0.0, 0.0);
    }
    let e2 = 1.0 - q * q;
    if e2 < 1e-8 {
        return (b * x / psi, b * y / psi);
    }
    let e = e2.sqrt();
    let pre = b / e;
    (pre * (e * x / psi).atan(), pre * (e * y / psi).atanh())
}

/// The SIE convergence in the lens frame (for tests and documentation).
pub fn sie_convergence(theta_e: f64, q: f64, x: f64, y: f64) -> f64 {
    theta_e / (2.0 * (q * x * x + y * y / q).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sis_images_and_signed_magnifications_match_closed_forms() {
        let theta_e = 1.3;
        let lens = SieShear::sis(theta_e);
        for beta in [0.2, 0.5, 0.9] {
            // Images on the source's axis at beta + theta_e and beta - theta_e.
            for (theta, mu_want) in [(beta + theta_e, 1.0 + theta_e / beta), (beta - theta_e, 1.0 - theta_e / beta)] {
                let (bx, by) = lens.ray_shoot(theta, 0.0);
                assert!((bx - beta).abs() < 1e-12 && by.abs() < 1e-12, "theta {theta} maps to {bx}");
                let mu = lens.magnification(theta, 0.0);
                assert!((mu - mu_want).abs() < 1e-5 * mu_want.abs(), "beta {beta}: mu {mu} vs {mu_want}");
            }
        }
    }

    #[test]
    fn sie_tends_to_sis_as_q_tends_to_one() {
        let sis = SieShear::sis(1.5);
        for q in [0.999, 0.99999, 1.0 - 1e-9] {
            let sie = SieShear { q, angle_rad: 0.7, ..sis };
            for (x, y) in [(0.3, 0.2), (-1.0, 2.0), (2.5, -0.1)] {
                let (a, b) = sie.deflection(x, y);
                let (c, d) = sis.deflection(x, y);
                let tol = 2.0 * (1.0 - q) + 1e-9;
                assert!((a - c).abs() < tol * 1.5 && (b - d).abs() < tol * 1.5, "q {q}: ({a},{b}) vs ({c},{d})");
            }
        }
    }

    /// Deflection of an elliptical convergence kappa(xi), xi^2 = x^2 + y^2 / q^2, by the 1-D
    /// integrals of Schramm (1990) / Keeton (2001):
    /// alpha_x = q x J0, alpha_y = q y J1, J_n = int_0^1 kappa(xi(u)) / (1 - (1 - q^2) u)^(n + 1/2) du,
    /// xi(u)^2 = u (x^2 + y^2 / (1 - (1 - q^2) u)). Substituting u = t^2 removes the 1/sqrt(u)
    /// singularity of an isothermal kappa; Gauss-Legendre on many panels does the rest.
    fn numerical_deflection(kappa_xi: impl Fn(f64) -> f64, q: f64, x: f64, y: f64) -> (f64, f64) {
        let nodes = [-0.906_179_845_938_664, -0.538_469_310_105_683, 0.0, 0.538_469_310_105_683, 0.906_179_845_938_664];
        let weights = [
            0.236_926_885_056_189,
            0.478_628_670_499_366,
            0.568_888_888_888_889,
            0.478_628_670_499_366,
            0.236_926_885_056_189,
        ];
        let panels = 400;
        let (mut j0, mut j1) = (0.0, 0.0);
        for p in 0..panels {
            let (a, b) = (p as f64 / panels as f64, (p + 1) as f64 / panels as f64);
            for (n, w) in nodes.iter().zip(weights) {
                let t = 0.5 * (b - a) * n + 0.5 * (a + b);
                let u = t * t;
                let d = 1.0 - (1.0 - q * q) * u;
                let xi = (u * (x * x + y * y / d)).sqrt();
                let f = kappa_xi(xi) * 2.0 * t * 0.5 * (b - a) * w;
                j0 += f / d.sqrt();
                j1 += f / (d * d.sqrt());
            }
        }
        (q * x * j0, q * y * j1)
    }

    #[test]
    fn sie_deflection_matches_numerical_integral_of_its_convergence() {
        let (theta_e, q): (f64, f64) = (1.2, 0.6);
        // In xi form: kappa = theta_e / (2 sqrt(q) xi), since q x^2 + y^2/q = q (x^2 + y^2/q^2).
        let kappa_xi = |xi: f64| theta_e / (2.0 * q.sqrt() * xi);
        let lens = SieShear { theta_e, q, angle_rad: 0.0, center: (0.0, 0.0), gamma1: 0.0, gamma2: 0.0 };
        for (x, y) in [(0.5, 0.3), (-1.4, 0.9), (0.2, -2.0), (2.2, 0.05)] {
            let (ax, ay) = lens.deflection(x, y);
            let (nx, ny) = numerical_deflection(kappa_xi, q, x, y);
            assert!((ax - nx).abs() < 1e-6 && (ay - ny).abs() < 1e-6, "({x},{y}): ({ax},{ay}) vs ({nx},{ny})");
            // And the convergence we document is the one integrated.
            let k = sie_convergence(theta_e, q, x, y);
            let xi = (x * x + y * y / (q * q)).sqrt();
            assert!((k - kappa_xi(xi)).abs() < 1e-12);
        }
    }

    #[test]
    fn shear_and_rotation_act_as_stated() {
        let lens = SieShear { theta_e: 0.0, q: 0.7, angle_rad: 0.3, center: (0.5, -0.2), gamma1: 0.05, gamma2: -0.03 };
        let (ax, ay) = lens.deflection(1.5, 0.8);
        let (dx, dy) = (1.0, 1.0);
        assert!((ax - (0.05 * dx - 0.03 * dy)).abs() < 1e-12);
        assert!((ay - (-0.03 * dx - 0.05 * dy)).abs() < 1e-12);
    }

    #[test]
    fn rays_shot_together_land_where_rays_shot_one_at_a_time_do() {
        for (q, gamma1, gamma2) in [
            (0.6, 0.03, -0.02),
            (1.0, 0.0, 0.05),
            (0.999_999_999, 0.01, 0.0),
            (0.9999, 0.0, 0.0),
            (0.4, 0.02, 0.01),
            (0.2, -0.04, 0.04),
        ] {
            let lens = SieShear { theta_e: 1.7, q, angle_rad: 0.9, center: (0.13, -0.21), gamma1, gamma2 };
            let shooter = lens.shooter();
            // f32 deflections: within 1e-6 arcsec (5e-6 of a 0.2" pixel) of the f64 ray; the
            // flattest lenses are shot one at a time, so exactly.
            let tolerance = if q >= F32_MIN_Q { 1e-6 } else { 0.0 };
            // A grid through the centre itself, where the deflection is taken as 0.
            let (mut xs, mut ys) = (Vec::new(), Vec::new());
            for i in -40..=40 {
                for j in -40..=40 {
                    xs.push(0.13 + i as f64 * 0.11);
                    ys.push(-0.21 + j as f64 * 0.097);
                }
            }
            let (mut bxs, mut bys) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
            shooter.ray_shoot_many(&xs, &ys, &mut bxs, &mut bys);
            for k in 0..xs.len() {
                let (bx, by) = shooter.ray_shoot(xs[k], ys[k]);
                assert!(
                    (bx - bxs[k]).abs() <= tolerance && (by - bys[k]).abs() <= tolerance,
                    "q {q} at ({}, {}): ({bx}, {by}) vs ({}, {})",
                    xs[k],
                    ys[k],
                    bxs[k],
                    bys[k]
                );
            }
        }
    }
}
