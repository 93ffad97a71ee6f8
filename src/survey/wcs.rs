//! Sky <-> pixel for survey images with a TAN (gnomonic) WCS, as survey coadds carry, with SIP
//! distortion when the header has it (astrometry.net, Spitzer, HST, many tiles).
//!
//! The spherical part (native to celestial rotation, the gnomonic projection, LONPOLE) is cds-astro's
//! `wcs` crate, a maintained implementation of Calabretta & Greisen (2002). The linear part (CRPIX
//! and the CD matrix) we apply ourselves: `wcs` 0.4.2 (through `mapproj` 0.4.0) inverts the CD
//! matrix transposed, so its sky-to-pixel is off by pixels for any rotated image (6 px on
//! `reference/wcs_tan.json`'s `rotated_cd` case), and its CROTA2 convention is right only when
//! CDELT1 = -CDELT2. We hand the crate an identity matrix, which its inversion cannot get wrong,
//! and keep the full linear algebra here, where a 2x2 inverse is easy to check.
//!
//! Pixel coordinates in this module follow FITS: the centre of the first pixel is (1, 1), x along
//! a row (NAXIS1), y up the rows (NAXIS2), as astropy's `origin=1` and ds9 count them.

use super::fits_write::Card;
use std::collections::BTreeMap;
use wcs::{ImgXY, LonLat, WCSParams, WCS};

/// The WCS keywords of one image header, as read (nothing derived yet).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WcsKeys {
    pub ctype: [Option<String>; 2],
    pub naxis: [usize; 2],
    pub crpix: [Option<f64>; 2],
    pub crval: [Option<f64>; 2],
    /// `CDi_j`, row-major: `[CD1_1, CD1_2, CD2_1, CD2_2]`.
    pub cd: [Option<f64>; 4],
    /// `PCi_j`, row-major.
    pub pc: [Option<f64>; 4],
    pub cdelt: [Option<f64>; 2],
    pub crota2: Option<f64>,
    pub lonpole: Option<f64>,
    pub latpole: Option<f64>,
    pub radesys: Option<String>,
    pub equinox: Option<f64>,
    /// SIP distortion (`CTYPEi = '...-TAN-SIP'`), when the header has it.
    pub sip: Option<Sip>,
}

/// Simple Imaging Polynomial distortion (Shupe et al. 2005), as astrometry.net, the Spitzer and
/// HST pipelines and many survey tiles write it: pixel offsets (u, v) from CRPIX become
/// (u + f(u, v), v + g(u, v)) before the CD matrix, with f = sum A_p_q u^p v^q and g likewise with
/// B. Positions near a large image's corners move by pixels without it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sip {
    /// (p, q, A_p_q) of every coefficient the header gives.
    pub a: Vec<(u32, u32, f64)>,
    /// (p, q, B_p_q).
    pub b: Vec<(u32, u32, f64)>,
    /// `A_ORDER` and `B_ORDER`.
    pub order: [u32; 2],
}

/// Highest SIP order read (the standard's examples stop at 9).
const SIP_MAX_ORDER: u32 = 9;

impl Sip {
    /// The coefficients of a header, through a numeric lookup; `None` without `A_ORDER` and
    /// `B_ORDER` in 1-9.
    fn from_lookup(number: &impl Fn(&str) -> Option<f64>) -> Option<Sip> {
        let order = |k: &str| number(k).filter(|o| (1.0..=SIP_MAX_ORDER as f64).contains(o)).map(|o| o as u32);
        let (oa, ob) = (order("A_ORDER")?, order("B_ORDER")?);
        let terms = |name: &str, order: u32| -> Vec<(u32, u32, f64)> {
            let mut out = Vec::new();
            for p in 0..=order {
                for q in 0..=order - p {
                    if let Some(v) = number(&format!("{name}_{p}_{q}")).filter(|v| v.is_finite() && *v != 0.0) {
                        out.push((p, q, v));
                    }
                }
            }
            out
        };
        Some(Sip { a: terms("A", oa), b: terms("B", ob), order: [oa, ob] })
    }

    /// Every key a header of this order may hold, for readers that must ask key by key.
    pub fn possible_keys(order: [u32; 2]) -> Vec<String> {
        let mut out = Vec::new();
        for (name, o) in [("A", order[0]), ("B", order[1])] {
            for p in 0..=o.min(SIP_MAX_ORDER) {
                for q in 0..=o.min(SIP_MAX_ORDER) - p {
                    out.push(format!("{name}_{p}_{q}"));
                }
            }
        }
        out
    }

    /// (u + f, v + g) and its Jacobian.
    fn apply(&self, u: f64, v: f64) -> ((f64, f64), [f64; 4]) {
        let poly = |terms: &[(u32, u32, f64)]| {
            let (mut value, mut du, mut dv) = (0.0, 0.0, 0.0);
            for &(p, q, c) in terms {
                let (up, vq) = (u.powi(p as i32), v.powi(q as i32));
                value += c * up * vq;
                if p > 0 {
                    du += c * p as f64 * u.powi(p as i32 - 1) * vq;
                }
                if q > 0 {
                    dv += c * q as f64 * up * v.powi(q as i32 - 1);
                }
            }
            (value, du, dv)
        };
        let (f, fu, fv) = poly(&self.a);
        let (g, gu, gv) = poly(&self.b);
        ((u + f, v + g), [1.0 + fu, fv, gu, 1.0 + gv])
    }

    /// The pixel offsets (u, v) that [`Sip::apply`] takes to (x, y): Newton's method from (x, y),
    /// to 1e-10 pixel, as astropy's `all_world2pix` solves it (a header's inverse AP/BP
    /// polynomials are approximations, so they are not used).
    fn invert(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let (mut u, mut v) = (x, y);
        for _ in 0..60 {
            let ((fx, fy), j) = self.apply(u, v);
            let (rx, ry) = (fx - x, fy - y);
            if rx.abs() < 1e-10 && ry.abs() < 1e-10 {
                return Some((u, v));
            }
            let det = j[0] * j[3] - j[1] * j[2];
            if !det.is_finite() || det.abs() < 1e-12 {
                return None;
            }
            u -= (j[3] * rx - j[1] * ry) / det;
            v -= (-j[2] * rx + j[0] * ry) / det;
        }
        let ((fx, fy), _) = self.apply(u, v);
        ((fx - x).abs() < 1e-6 && (fy - y).abs() < 1e-6).then_some((u, v))
    }

    /// Header cards, `A_ORDER` and each `A_p_q`, then B's.
    fn cards(&self) -> Vec<(String, Card)> {
        let mut out = Vec::new();
        for (name, order, terms) in [("A", self.order[0], &self.a), ("B", self.order[1], &self.b)] {
            out.push((format!("{name}_ORDER"), Card::Int(order as i64)));
            for &(p, q, c) in terms {
                out.push((format!("{name}_{p}_{q}"), Card::Float(c)));
            }
        }
        out
    }
}

impl WcsKeys {
    /// Reads the keywords through a lookup (a FITS header, a JSON object): `number` returns a
    /// numeric key's value, `text` a string key's.
    pub fn from_lookup(number: impl Fn(&str) -> Option<f64>, text: impl Fn(&str) -> Option<String>) -> WcsKeys {
        let n = |k: &str| number(k).filter(|v| v.is_finite());
        let naxis = |k: &str| n(k).filter(|v| *v >= 0.0).map(|v| v as usize).unwrap_or(0);
        WcsKeys {
            ctype: [text("CTYPE1"), text("CTYPE2")],
            naxis: [naxis("NAXIS1"), naxis("NAXIS2")],
            crpix: [n("CRPIX1"), n("CRPIX2")],
            crval: [n("CRVAL1"), n("CRVAL2")],
            cd: [n("CD1_1"), n("CD1_2"), n("CD2_1"), n("CD2_2")],
            pc: [n("PC1_1"), n("PC1_2"), n("PC2_1"), n("PC2_2")],
            cdelt: [n("CDELT1"), n("CDELT2")],
            crota2: n("CROTA2"),
            lonpole: n("LONPOLE"),
            latpole: n("LATPOLE"),
            radesys: text("RADESYS").or_else(|| text("RADECSYS")),
            equinox: n("EQUINOX"),
            sip: text("CTYPE1")
                .filter(|c| c.trim().to_ascii_uppercase().ends_with("-SIP"))
                .and_then(|_| Sip::from_lookup(&n)),
        }
    }
}

/// Why a header's WCS cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WcsError {
    #[error("no WCS: {0} missing")]
    Missing(&'static str),
    #[error("projection {0} is not supported (only TAN, with or without SIP distortion: CTYPE1 = 'RA---TAN', CTYPE2 = 'DEC--TAN', or 'RA---TAN-SIP', 'DEC--TAN-SIP')")]
    UnsupportedProjection(String),
    #[error("celestial axes {0} are not supported (only RA/Dec)")]
    UnsupportedAxes(String),
    #[error("the pixel-to-sky matrix is singular (CD/CDELT/PC give no area)")]
    Singular,
    #[error("WCS rejected: {0}")]
    Invalid(String),
}

/// A TAN WCS: pixel (FITS, 1-based) <-> (RA, Dec) in degrees, in the header's own frame.
pub struct TanWcs {
    crpix: [f64; 2],
    crval: [f64; 2],
    /// Degrees of intermediate world coordinate per pixel, row-major.
    cd: [f64; 4],
    inverse: [f64; 4],
    naxis: [usize; 2],
    radesys: Option<String>,
    equinox: Option<f64>,
    lonpole: Option<f64>,
    latpole: Option<f64>,
    sip: Option<Sip>,
    sphere: WCS,
}

impl Clone for TanWcs {
    fn clone(&self) -> TanWcs {
        TanWcs::new(&self.keys()).expect("a WCS that was built once builds again")
    }
}

impl std::fmt::Debug for TanWcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TanWcs")
            .field("crpix", &self.crpix)
            .field("crval", &self.crval)
            .field("cd", &self.cd)
            .field("naxis", &self.naxis)
            .finish()
    }
}

/// The projection code of a CTYPE: `RA---TAN` -> `TAN`, `RA---TAN-SIP` -> `TAN-SIP`.
fn projection_code(ctype: &str) -> String {
    ctype.get(5..).unwrap_or(ctype).trim().trim_start_matches('-').to_string()
}

impl TanWcs {
    /// North up, east left: the TAN WCS of a `size`-pixel cutout centred on (ra, dec), as a
    /// survey cutout's header has (the demo's candidates, simulations at another pixel scale).
    pub fn north_up(ra: f64, dec: f64, size: usize, pixel_arcsec: f64) -> Option<TanWcs> {
        let centre = (size as f64 + 1.0) / 2.0;
        let scale = pixel_arcsec / 3600.0;
        TanWcs::new(&WcsKeys {
            ctype: [Some("RA---TAN".into()), Some("DEC--TAN".into())],
            naxis: [size, size],
            crpix: [Some(centre), Some(centre)],
            crval: [Some(ra), Some(dec)],
            cd: [Some(-scale), Some(0.0), Some(0.0), Some(scale)],
            ..Default::default()
        })
        .ok()
    }

    pub fn new(keys: &WcsKeys) -> Result<TanWcs, WcsError> {
        let c1 = keys.ctype[0].as_deref().ok_or(WcsError::Missing("CTYPE1"))?.trim().to_ascii_uppercase();
        let c2 = keys.ctype[1].as_deref().ok_or(WcsError::Missing("CTYPE2"))?.trim().to_ascii_uppercase();
        let (p1, p2) = (projection_code(&c1), projection_code(&c2));
        let known = |p: &str| p == "TAN" || p == "TAN-SIP";
        if !known(&p1) || !known(&p2) {
            let name = if !known(&p1) { p1 } else { p2 };
            return Err(WcsError::UnsupportedProjection(name));
        }
        let sip = if p1 == "TAN-SIP" {
            Some(keys.sip.clone().ok_or(WcsError::Missing("A_ORDER and B_ORDER (a TAN-SIP header's distortion)"))?)
        } else {
            None
        };
        if !c1.starts_with("RA--") || !c2.starts_with("DEC-") {
            return Err(WcsError::UnsupportedAxes(format!("{c1} / {c2}")));
        }
        let crpix =
            [keys.crpix[0].ok_or(WcsError::Missing("CRPIX1"))?, keys.crpix[1].ok_or(WcsError::Missing("CRPIX2"))?];
        let crval =
            [keys.crval[0].ok_or(WcsError::Missing("CRVAL1"))?, keys.crval[1].ok_or(WcsError::Missing("CRVAL2"))?];
        let cd = linear_matrix(keys)?;
        let det = cd[0] * cd[3] - cd[1] * cd[2];
        if !det.is_finite() || det.abs() < 1e-30 {
            return Err(WcsError::Singular);
        }
        let inverse = [cd[3] / det, -cd[1] / det, -cd[2] / det, cd[0] / det];
        let sphere = sphere_only(keys, crval)?;
        Ok(TanWcs {
            crpix,
            crval,
            cd,
            inverse,
            naxis: keys.naxis,
            radesys: keys.radesys.clone(),
            equinox: keys.equinox,
            lonpole: keys.lonpole,
            latpole: keys.latpole,
            sip,
            sphere,
        })
    }

    /// Image size (NAXIS1, NAXIS2) the header gave.
    pub fn naxis(&self) -> [usize; 2] {
        self.naxis
    }

    /// Sky position (RA in [0, 360), Dec) of FITS pixel (x, y); `None` only for points the
    /// projection cannot reach (beyond 90 degrees from the tangent point).
    pub fn pixel_to_sky(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let (dx, dy) = (x - self.crpix[0], y - self.crpix[1]);
        let (dx, dy) = match &self.sip {
            Some(sip) => sip.apply(dx, dy).0,
            None => (dx, dy),
        };
        let u = self.cd[0] * dx + self.cd[1] * dy;
        let v = self.cd[2] * dx + self.cd[3] * dy;
        let ll = self.sphere.unproj_lonlat(&ImgXY::new(u, v))?;
        Some((ll.lon().to_degrees().rem_euclid(360.0), ll.lat().to_degrees()))
    }

    /// FITS pixel (x, y) of a sky position; `None` for the hemisphere behind the tangent point.
    pub fn sky_to_pixel(&self, ra_deg: f64, dec_deg: f64) -> Option<(f64, f64)> {
        if !(ra_deg.is_finite() && dec_deg.is_finite()) || dec_deg.abs() > 90.0 {
            return None;
        }
        // The gnomonic projection maps only the hemisphere around the tangent point.
        let (r0, d0) = (self.crval[0].to_radians(), self.crval[1].to_radians());
        let (r, d) = (ra_deg.to_radians(), dec_deg.to_radians());
        let cos_angle = d0.sin() * d.sin() + d0.cos() * d.cos() * (r - r0).cos();
        if cos_angle <= 1e-6 {
            return None;
        }
        let uv = self.sphere.proj_lonlat(&LonLat::new(r, d))?;
        let (u, v) = (uv.x(), uv.y());
        let dx = self.inverse[0] * u + self.inverse[1] * v;
        let dy = self.inverse[2] * u + self.inverse[3] * v;
        let (dx, dy) = match &self.sip {
            Some(sip) => sip.invert(dx, dy)?,
            None => (dx, dy),
        };
        Some((dx + self.crpix[0], dy + self.crpix[1]))
    }

    /// The same WCS for a cutout whose first pixel is this image's pixel (x0, y0), 1-based, of
    /// size `width` x `height`: CRPIX shifted, as astropy's `Cutout2D` does.
    pub fn cutout(&self, x0: i64, y0: i64, width: usize, height: usize) -> TanWcs {
        let keys = self.keys();
        let keys = WcsKeys {
            crpix: [Some(self.crpix[0] - (x0 - 1) as f64), Some(self.crpix[1] - (y0 - 1) as f64)],
            naxis: [width, height],
            ..keys
        };
        TanWcs::new(&keys).expect("a valid WCS stays valid when shifted")
    }

    /// The keywords that describe this WCS (CD form), for writing into a header.
    pub fn keys(&self) -> WcsKeys {
        let [c1, c2] = self.ctype();
        WcsKeys {
            ctype: [Some(c1.into()), Some(c2.into())],
            naxis: self.naxis,
            crpix: self.crpix.map(Some),
            crval: self.crval.map(Some),
            cd: self.cd.map(Some),
            pc: [None; 4],
            cdelt: [None; 2],
            crota2: None,
            lonpole: self.lonpole,
            latpole: self.latpole,
            radesys: self.radesys.clone(),
            equinox: self.equinox,
            sip: self.sip.clone(),
        }
    }

    /// CTYPE1 and CTYPE2 as a header writes them.
    fn ctype(&self) -> [&'static str; 2] {
        if self.sip.is_some() {
            ["RA---TAN-SIP", "DEC--TAN-SIP"]
        } else {
            ["RA---TAN", "DEC--TAN"]
        }
    }

    /// Header cards for this WCS, in the order FITS tools expect them.
    pub fn header_cards(&self) -> Vec<(String, Card)> {
        let mut out = vec![
            ("WCSAXES".to_string(), Card::Int(2)),
            ("CTYPE1".into(), Card::Str(self.ctype()[0].into())),
            ("CTYPE2".into(), Card::Str(self.ctype()[1].into())),
            ("CUNIT1".into(), Card::Str("deg".into())),
            ("CUNIT2".into(), Card::Str("deg".into())),
            ("CRPIX1".into(), Card::Float(self.crpix[0])),
            ("CRPIX2".into(), Card::Float(self.crpix[1])),
            ("CRVAL1".into(), Card::Float(self.crval[0])),
            ("CRVAL2".into(), Card::Float(self.crval[1])),
            ("CD1_1".into(), Card::Float(self.cd[0])),
            ("CD1_2".into(), Card::Float(self.cd[1])),
            ("CD2_1".into(), Card::Float(self.cd[2])),
            ("CD2_2".into(), Card::Float(self.cd[3])),
        ];
        if let Some(l) = self.lonpole {
            out.push(("LONPOLE".into(), Card::Float(l)));
        }
        if let Some(l) = self.latpole {
            out.push(("LATPOLE".into(), Card::Float(l)));
        }
        out.push(("RADESYS".into(), Card::Str(self.radesys.clone().unwrap_or_else(|| "ICRS".into()))));
        if let Some(e) = self.equinox {
            out.push(("EQUINOX".into(), Card::Float(e)));
        }
        if let Some(sip) = &self.sip {
            out.extend(sip.cards());
        }
        out
    }

    /// The WCS as a JSON object of header keywords (stored with a candidate).
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (k, v) in self.header_cards() {
            let value = match v {
                Card::Int(i) => serde_json::json!(i),
                Card::Float(f) => serde_json::json!(f),
                Card::Str(s) => serde_json::json!(s),
                Card::Bool(b) => serde_json::json!(b),
            };
            map.insert(k, value);
        }
        map.insert("NAXIS1".into(), serde_json::json!(self.naxis[0]));
        map.insert("NAXIS2".into(), serde_json::json!(self.naxis[1]));
        serde_json::Value::Object(map)
    }

    /// The WCS back from [`TanWcs::to_json`].
    pub fn from_json(value: &serde_json::Value) -> Result<TanWcs, WcsError> {
        TanWcs::new(&WcsKeys::from_lookup(
            |k| value.get(k).and_then(serde_json::Value::as_f64),
            |k| value.get(k).and_then(serde_json::Value::as_str).map(str::to_string),
        ))
    }

    /// Pixel scale in arcseconds (the geometric mean of the two axes).
    pub fn pixel_scale_arcsec(&self) -> f64 {
        (self.cd[0] * self.cd[3] - self.cd[1] * self.cd[2]).abs().sqrt() * 3600.0
    }
}

/// The CD matrix, from CD, from CDELT with PC, or from CDELT with CROTA2 (in that precedence, as
/// Calabretta & Greisen 2002 section 6.1 gives the conventions).
fn linear_matrix(keys: &WcsKeys) -> Result<[f64; 4], WcsError> {
    if keys.cd.iter().any(Option::is_some) {
        return Ok(keys.cd.map(|v| v.unwrap_or(0.0)));
    }
    let [c1, c2] = [
        keys.cdelt[0].ok_or(WcsError::Missing("CD or CDELT1"))?,
        keys.cdelt[1].ok_or(WcsError::Missing("CD or CDELT2"))?,
    ];
    if keys.pc.iter().any(Option::is_some) {
        let pc = [
            keys.pc[0].unwrap_or(1.0),
            keys.pc[1].unwrap_or(0.0),
            keys.pc[2].unwrap_or(0.0),
            keys.pc[3].unwrap_or(1.0),
        ];
        return Ok([c1 * pc[0], c1 * pc[1], c2 * pc[2], c2 * pc[3]]);
    }
    let (s, c) = keys.crota2.unwrap_or(0.0).to_radians().sin_cos();
    Ok([c1 * c, -c2 * s, c1 * s, c2 * c])
}

/// The crate's WCS for the spherical part only: CRPIX 0 and an identity CD matrix, so its input
/// "pixels" are intermediate world coordinates in degrees.
fn sphere_only(keys: &WcsKeys, crval: [f64; 2]) -> Result<WCS, WcsError> {
    let mut params = serde_json::json!({
        "CTYPE1": "RA---TAN",
        "CTYPE2": "DEC--TAN",
        "NAXIS": 2,
        "NAXIS1": keys.naxis[0].max(1),
        "NAXIS2": keys.naxis[1].max(1),
        "CRPIX1": 0.0,
        "CRPIX2": 0.0,
        "CRVAL1": crval[0],
        "CRVAL2": crval[1],
        "CD1_1": 1.0,
        "CD1_2": 0.0,
        "CD2_1": 0.0,
        "CD2_2": 1.0,
    });
    // No RADESYS on purpose: the crate would convert FK5 positions to ICRS, while a survey's
    // catalogue and its images share one frame and astropy's pix2world converts nothing.
    if let Some(l) = keys.lonpole {
        params["LONPOLE"] = l.into();
    }
    if let Some(l) = keys.latpole {
        params["LATPOLE"] = l.into();
    }
    let params: WCSParams = serde_json::from_value(params).map_err(|e| WcsError::Invalid(e.to_string()))?;
    WCS::new(&params).map_err(|e| WcsError::Invalid(format!("{e:?}")))
}

/// Reads the WCS of an image HDU of `size` (NAXIS1, NAXIS2) pixels.
pub fn read_wcs(file: &mut fitsio::FitsFile, hdu: &fitsio::hdu::FitsHdu, size: [usize; 2]) -> Result<TanWcs, WcsError> {
    TanWcs::new(&read_wcs_keys(file, hdu, size))
}

/// The WCS keywords of an image HDU of `size` (NAXIS1, NAXIS2), read as they are: for
/// [`TanWcs::new`], or for [`celestial_pixel_scale`] when the projection is not TAN.
pub fn read_wcs_keys(file: &mut fitsio::FitsFile, hdu: &fitsio::hdu::FitsHdu, size: [usize; 2]) -> WcsKeys {
    const NUMBERS: &[&str] = &[
        "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "PC1_1", "PC1_2", "PC2_1", "PC2_2",
        "CDELT1", "CDELT2", "CROTA2", "LONPOLE", "LATPOLE", "EQUINOX",
    ];
    const TEXTS: &[&str] = &["CTYPE1", "CTYPE2", "RADESYS", "RADECSYS"];
    let mut numbers: BTreeMap<String, f64> = BTreeMap::new();
    let read = |file: &mut fitsio::FitsFile, numbers: &mut BTreeMap<String, f64>, k: &str| {
        if let Ok(v) = hdu.read_key::<f64>(file, k) {
            numbers.insert(k.to_string(), v);
        }
    };
    for &k in NUMBERS {
        read(file, &mut numbers, k);
    }
    let mut texts = BTreeMap::new();
    for &k in TEXTS {
        if let Ok(v) = hdu.read_key::<String>(file, k) {
            texts.insert(k, v.trim().to_string());
        }
    }
    // SIP coefficients are many and optional: asked for only when CTYPE says SIP.
    if texts.get("CTYPE1").is_some_and(|c| c.to_ascii_uppercase().ends_with("-SIP")) {
        read(file, &mut numbers, "A_ORDER");
        read(file, &mut numbers, "B_ORDER");
        let order = |k: &str| numbers.get(k).map(|&o| o.clamp(0.0, SIP_MAX_ORDER as f64) as u32).unwrap_or(0);
        for k in Sip::possible_keys([order("A_ORDER"), order("B_ORDER")]) {
            read(file, &mut numbers, &k);
        }
    }
    let mut keys = WcsKeys::from_lookup(|k| numbers.get(k).copied(), |k| texts.get(k).cloned());
    keys.naxis = size;
    keys
}

/// The pixel scale in arcseconds of any celestial WCS, TAN or not (SIN, ZEA, ARC, CAR...): the
/// geometric mean of the CD matrix's axes. Every projection is conformal to first order at its
/// reference point, so a cutout's scale needs no projection code, and a cutout whose positions
/// this module cannot compute (not TAN) is still seen at its true scale. `None` when the axes
/// are not celestial (a linear or spectral WCS says nothing about arcseconds) or the matrix is
/// missing or singular.
pub fn celestial_pixel_scale(keys: &WcsKeys) -> Option<f64> {
    const CELESTIAL: [&str; 2] = ["RA--", "DEC-"];
    const OTHER_FRAMES: [&str; 6] = ["GLON", "GLAT", "ELON", "ELAT", "SLON", "SLAT"];
    let is_celestial = |c: &Option<String>| {
        c.as_deref().map(|c| c.trim().to_ascii_uppercase()).is_some_and(|c| {
            let head = c.get(..4).unwrap_or("");
            CELESTIAL.contains(&head) || OTHER_FRAMES.contains(&head)
        })
    };
    if !(is_celestial(&keys.ctype[0]) && is_celestial(&keys.ctype[1])) {
        return None;
    }
    let cd = linear_matrix(keys).ok()?;
    let scale = (cd[0] * cd[3] - cd[1] * cd[2]).abs().sqrt() * 3600.0;
    (scale.is_finite() && scale > 0.0).then_some(scale)
}

/// A sky position as people read it: degrees and sexagesimal, e.g.
/// `RA 131.07865  Dec +2.76652  (08:44:18.876 +02:45:59.47)`.
pub fn sky_label(ra_deg: f64, dec_deg: f64) -> String {
    let (ra, dec) = sexagesimal(ra_deg, dec_deg);
    format!("RA {ra_deg:.5}  Dec {dec_deg:+.5}  ({ra} {dec})")
}

/// Degrees as sexagesimal, `hh:mm:ss.sss` for RA and `+dd:mm:ss.ss` for Dec, as ds9 shows them.
pub fn sexagesimal(ra_deg: f64, dec_deg: f64) -> (String, String) {
    let ra = ra_deg.rem_euclid(360.0) / 15.0;
    let total_ms = (ra * 3_600_000.0).round() as i64 % (24 * 3_600_000);
    let (h, rest) = (total_ms / 3_600_000, total_ms % 3_600_000);
    let (m, ms) = (rest / 60_000, rest % 60_000);
    let ra_text = format!("{h:02}:{m:02}:{:06.3}", ms as f64 / 1000.0);
    let sign = if dec_deg < 0.0 { '-' } else { '+' };
    let total_cs = (dec_deg.abs() * 360_000.0).round() as i64;
    let (d, rest) = (total_cs / 360_000, total_cs % 360_000);
    let (m, cs) = (rest / 6000, rest % 6000);
    let dec_text = format!("{sign}{d:02}:{m:02}:{:05.2}", cs as f64 / 100.0);
    (ra_text, dec_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> serde_json::Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/wcs_tan.json");
        let text = std::fs::read_to_string(path).expect("shared/reference/wcs_tan.json beside the repo");
        serde_json::from_str(&text).unwrap()
    }

    fn keys_of(header: &serde_json::Value) -> WcsKeys {
        WcsKeys::from_lookup(
            |k| header.get(k).and_then(|v| v.as_f64()),
            |k| header.get(k).and_then(|v| v.as_str()).map(str::to_string),
        )
    }

    /// The scale of projections we cannot place (SIN, ZEA) from their linear part alone, in
    /// each convention of writing it; none for axes that are not on the sky.
    #[test]
    fn any_celestial_projection_gives_its_pixel_scale() {
        let arcsec = 1.0 / 3600.0;
        let keys = |c1: &str, c2: &str| WcsKeys {
            ctype: [Some(c1.into()), Some(c2.into())],
            cdelt: [Some(-0.1 * arcsec), Some(0.1 * arcsec)],
            ..Default::default()
        };
        let sin = keys("RA---SIN", "DEC--SIN");
        assert!(matches!(TanWcs::new(&sin), Err(WcsError::UnsupportedProjection(p)) if p == "SIN"));
        let near = |k: &WcsKeys, want: f64| celestial_pixel_scale(k).is_some_and(|s| (s - want).abs() < 1e-9);
        assert!(near(&sin, 0.1), "{:?}", celestial_pixel_scale(&sin));
        // A rotation (CROTA2, or a PC matrix) leaves the scale alone.
        assert!(near(&WcsKeys { crota2: Some(30.0), ..sin.clone() }, 0.1));
        let (c, s) = (0.6, 0.8);
        assert!(near(&WcsKeys { pc: [Some(c), Some(-s), Some(s), Some(c)], ..sin.clone() }, 0.1));
        // Rectangular pixels: the geometric mean, as for TAN.
        let rect = WcsKeys { cd: [Some(-0.1 * arcsec), Some(0.0), Some(0.0), Some(0.4 * arcsec)], ..sin.clone() };
        assert!(near(&rect, 0.2));
        assert!(near(&keys("GLON-ZEA", "GLAT-ZEA"), 0.1));
        assert_eq!(celestial_pixel_scale(&keys("LINEAR", "LINEAR")), None);
        assert_eq!(celestial_pixel_scale(&WcsKeys { cdelt: [None, None], ..sin.clone() }), None);
        assert_eq!(celestial_pixel_scale(&WcsKeys { cdelt: [Some(0.0), Some(arcsec)], ..sin }), None);
    }

    /// Every case astropy computed, both directions: sky within 1e-9 degree (3.6 microarcsec),
    /// pixels within 1e-6 pixel.
    #[test]
    fn matches_astropy_both_ways_on_every_reference_case() {
        let r = reference();
        let cases = r["cases"].as_array().unwrap();
        assert!(cases.len() >= 5);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let wcs = TanWcs::new(&keys_of(&case["header"])).unwrap_or_else(|e| panic!("{name}: {e}"));
            let pixels = case["pixel_1based"].as_array().unwrap();
            let skies = case["sky_deg"].as_array().unwrap();
            assert_eq!(pixels.len(), skies.len());
            for (p, s) in pixels.iter().zip(skies) {
                let (x, y) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
                let (ra, dec) = (s[0].as_f64().unwrap(), s[1].as_f64().unwrap());
                let (r2, d2) = wcs.pixel_to_sky(x, y).unwrap();
                let dra = ((r2 - ra + 540.0).rem_euclid(360.0) - 180.0).abs();
                assert!(
                    dra < 1e-9 && (d2 - dec).abs() < 1e-9,
                    "{name}: ({x}, {y}) -> ({r2}, {d2}), astropy ({ra}, {dec})"
                );
                let (x2, y2) = wcs.sky_to_pixel(ra, dec).unwrap();
                assert!(
                    (x2 - x).abs() < 1e-6 && (y2 - y).abs() < 1e-6,
                    "{name}: ({ra}, {dec}) -> ({x2}, {y2}), astropy ({x}, {y})"
                );
            }
        }
    }

    #[test]
    fn crota2_and_pc_give_the_same_wcs_as_the_equivalent_cd() {
        // A rotation of 30 degrees with unequal scales, where the sign conventions matter.
        let (c1, c2, rho) = (-6.0e-5, 5.0e-5, 30f64);
        let (s, c) = rho.to_radians().sin_cos();
        let base = WcsKeys {
            ctype: [Some("RA---TAN".into()), Some("DEC--TAN".into())],
            naxis: [500, 400],
            crpix: [Some(250.0), Some(200.0)],
            crval: [Some(10.0), Some(-45.0)],
            ..Default::default()
        };
        let cd =
            TanWcs::new(&WcsKeys { cd: [Some(c1 * c), Some(-c2 * s), Some(c1 * s), Some(c2 * c)], ..base.clone() })
                .unwrap();
        let crota = TanWcs::new(&WcsKeys { cdelt: [Some(c1), Some(c2)], crota2: Some(rho), ..base.clone() }).unwrap();
        let pc = TanWcs::new(&WcsKeys {
            cdelt: [Some(c1), Some(c2)],
            pc: [Some(c), Some(-s * c2 / c1), Some(s * c1 / c2), Some(c)],
            ..base
        })
        .unwrap();
        for (x, y) in [(1.0, 1.0), (500.0, 1.0), (123.4, 377.7)] {
            let a = cd.pixel_to_sky(x, y).unwrap();
            for other in [&crota, &pc] {
                let b = other.pixel_to_sky(x, y).unwrap();
                assert!((a.0 - b.0).abs() < 1e-10 && (a.1 - b.1).abs() < 1e-10, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn other_projections_and_axes_are_refused_by_name() {
        let mut keys = WcsKeys {
            ctype: [Some("RA---SIN".into()), Some("DEC--SIN".into())],
            crpix: [Some(1.0); 2],
            crval: [Some(0.0); 2],
            cd: [Some(-1e-4), None, None, Some(1e-4)],
            ..Default::default()
        };
        assert_eq!(TanWcs::new(&keys).unwrap_err(), WcsError::UnsupportedProjection("SIN".into()));
        keys.ctype = [Some("RA---TPV".into()), Some("DEC--TPV".into())];
        assert_eq!(TanWcs::new(&keys).unwrap_err(), WcsError::UnsupportedProjection("TPV".into()));
        // SIP without its polynomial orders cannot be placed.
        keys.ctype = [Some("RA---TAN-SIP".into()), Some("DEC--TAN-SIP".into())];
        assert!(matches!(TanWcs::new(&keys).unwrap_err(), WcsError::Missing(m) if m.contains("A_ORDER")));
        keys.ctype = [Some("GLON-TAN".into()), Some("GLAT-TAN".into())];
        assert!(matches!(TanWcs::new(&keys).unwrap_err(), WcsError::UnsupportedAxes(_)));
        keys.ctype = [None, None];
        assert_eq!(TanWcs::new(&keys).unwrap_err(), WcsError::Missing("CTYPE1"));
        keys.ctype = [Some("RA---TAN".into()), Some("DEC--TAN".into())];
        keys.cd = [Some(1e-4), Some(1e-4), Some(1e-4), Some(1e-4)];
        assert_eq!(TanWcs::new(&keys).unwrap_err(), WcsError::Singular);
    }

    fn sip_reference() -> serde_json::Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wcs_sip.json");
        serde_json::from_str(&std::fs::read_to_string(path).expect("tests/data/wcs_sip.json")).unwrap()
    }

    /// TAN-SIP headers that astropy placed (scripts/wcs_sip_reference.py): sky within 1e-9
    /// degree, pixels within 1e-6, both ways, at corners where the distortion moves positions by
    /// pixels; and through JSON and a cutout's shift the same.
    #[test]
    fn sip_matches_astropy_both_ways() {
        for case in sip_reference()["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let keys = keys_of(&case["header"]);
            let wcs = TanWcs::new(&keys).unwrap_or_else(|e| panic!("{name}: {e}"));
            let plain = TanWcs::new(&WcsKeys {
                ctype: [Some("RA---TAN".into()), Some("DEC--TAN".into())],
                sip: None,
                ..keys.clone()
            })
            .unwrap();
            let json = TanWcs::from_json(&wcs.to_json()).unwrap();
            let cut = wcs.cutout(11, 21, 101, 101);
            let mut worst_without_sip: f64 = 0.0;
            for (p, sky) in case["pixel_1based"].as_array().unwrap().iter().zip(case["sky_deg"].as_array().unwrap()) {
                let (x, y) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
                let (ra, dec) = (sky[0].as_f64().unwrap(), sky[1].as_f64().unwrap());
                for (what, w, (px, py)) in
                    [("wcs", &wcs, (x, y)), ("json", &json, (x, y)), ("cutout", &cut, (x - 10.0, y - 20.0))]
                {
                    let got = w.pixel_to_sky(px, py).unwrap();
                    let d_ra = (got.0 - ra + 540.0).rem_euclid(360.0) - 180.0;
                    assert!(d_ra.abs() < 1e-9 && (got.1 - dec).abs() < 1e-9, "{name} {what} ({px}, {py}): {got:?}");
                    let back = w.sky_to_pixel(ra, dec).unwrap();
                    assert!((back.0 - px).abs() < 1e-6 && (back.1 - py).abs() < 1e-6, "{name} {what}: {back:?}");
                }
                let naive = plain.sky_to_pixel(ra, dec).unwrap();
                worst_without_sip = worst_without_sip.max((naive.0 - x).hypot(naive.1 - y));
            }
            assert!(worst_without_sip > 1.0, "{name}: the distortion must matter ({worst_without_sip} px)");
        }
    }

    /// The SIP keys come through a FITS header as they go in (the reader asks for them only when
    /// CTYPE says SIP).
    #[test]
    fn sip_is_read_from_a_fits_header() {
        use crate::survey::fits_write::{write_file, ImageHdu};
        let case = &sip_reference()["cases"][1];
        let mut hdu = ImageHdu::f32_image(4, 4, vec![0.0; 16]);
        for (k, v) in case["header"].as_object().unwrap() {
            if k.starts_with("NAXIS") {
                continue;
            }
            let card = match v {
                serde_json::Value::String(t) => Card::Str(t.clone()),
                v if v.is_i64() => Card::Int(v.as_i64().unwrap()),
                v => Card::Float(v.as_f64().unwrap()),
            };
            hdu = hdu.with_key(k, card);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sip.fits");
        write_file(&path, Some(&hdu), &[]).unwrap();
        let mut file = fitsio::FitsFile::open(&path).unwrap();
        let h = file.primary_hdu().unwrap();
        let wcs = read_wcs(&mut file, &h, [1000, 1000]).unwrap();
        assert_eq!(wcs.keys().sip, keys_of(&case["header"]).sip);
        let (x, y) = (1.0, 1.0);
        let want = &case["sky_deg"][0];
        let got = wcs.pixel_to_sky(x, y).unwrap();
        assert!((got.0 - want[0].as_f64().unwrap()).abs() < 1e-9 && (got.1 - want[1].as_f64().unwrap()).abs() < 1e-9);
    }

    #[test]
    fn a_cutout_wcs_puts_the_same_sky_on_the_shifted_pixel() {
        let r = reference();
        let wcs = TanWcs::new(&keys_of(&r["cases"][0]["header"])).unwrap();
        let cut = wcs.cutout(1001, 2001, 101, 101);
        let a = wcs.pixel_to_sky(1051.0, 2051.0).unwrap();
        let b = cut.pixel_to_sky(51.0, 51.0).unwrap();
        assert!((a.0 - b.0).abs() < 1e-12 && (a.1 - b.1).abs() < 1e-12);
        assert_eq!(cut.naxis(), [101, 101]);
    }

    #[test]
    fn json_round_trip_keeps_the_wcs() {
        let r = reference();
        let wcs = TanWcs::new(&keys_of(&r["cases"][3]["header"])).unwrap();
        let back = TanWcs::from_json(&wcs.to_json()).unwrap();
        assert_eq!(back.naxis(), wcs.naxis());
        let (a, b) = (wcs.pixel_to_sky(10.0, 900.0).unwrap(), back.pixel_to_sky(10.0, 900.0).unwrap());
        assert_eq!(a, b);
    }

    #[test]
    fn the_far_hemisphere_has_no_pixel() {
        let r = reference();
        let wcs = TanWcs::new(&keys_of(&r["cases"][0]["header"])).unwrap();
        assert!(wcs.sky_to_pixel(131.36 + 180.0, -2.478).is_none());
        assert!(wcs.sky_to_pixel(f64::NAN, 0.0).is_none());
    }

    #[test]
    fn sexagesimal_rounds_into_the_next_unit() {
        assert_eq!(sexagesimal(0.0, 0.0), ("00:00:00.000".into(), "+00:00:00.00".into()));
        assert_eq!(sexagesimal(131.3649, -2.478).1, "-02:28:40.80");
        assert_eq!(sexagesimal(131.3649, 2.478).0, "08:45:27.576");
        // 359.99999999 degrees is 23:59:59.99999..., which rounds to 00:00:00.000, not 24:00.
        assert_eq!(sexagesimal(359.999_999_99, 0.0).0, "00:00:00.000");
        assert_eq!(sexagesimal(10.0, -0.5).1, "-00:30:00.00");
    }
}
