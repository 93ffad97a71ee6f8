//! Line charts as PNG, for command-line experiments whose result is a curve (the CLI has no
//! window to draw in; the GUI uses egui_plot instead).

use super::label::{draw_text, text_width};
use super::Rgba8;

/// One named curve.
pub struct Series {
    pub name: String,
    pub colour: [u8; 4],
    pub points: Vec<(f64, f64)>,
}

/// A panel: title, axis names and its curves.
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// Distinct colours for up to eight curves (colour-blind friendly, after Okabe and Ito).
pub const PALETTE: [[u8; 4]; 8] = [
    [230, 159, 0, 255],
    [86, 180, 233, 255],
    [0, 158, 115, 255],
    [240, 228, 66, 255],
    [0, 114, 178, 255],
    [213, 94, 0, 255],
    [204, 121, 167, 255],
    [200, 200, 200, 255],
];

const BG: [u8; 4] = [250, 250, 250, 255];
const INK: [u8; 4] = [30, 30, 30, 255];
const GRID: [u8; 4] = [220, 220, 220, 255];

/// "Nice" tick positions covering [lo, hi] (steps of 1, 2 or 5 times a power of ten).
pub fn ticks(lo: f64, hi: f64, want: usize) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) || !lo.is_finite() || !hi.is_finite() {
        return vec![lo];
    }
    let raw = (hi - lo) / want.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

fn label_of(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    format!("{v:.decimals$}")
}

fn line(buf: &mut [[u8; 4]], width: usize, a: (f64, f64), b: (f64, f64), colour: [u8; 4], thick: i64) {
    let height = (buf.len() / width) as i64;
    let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let (x, y) = ((a.0 + (b.0 - a.0) * t).round() as i64, (a.1 + (b.1 - a.1) * t).round() as i64);
        for dy in -thick / 2..=thick / 2 {
            for dx in -thick / 2..=thick / 2 {
                let (px, py) = (x + dx, y + dy);
                if px >= 0 && py >= 0 && (px as usize) < width && py < height {
                    buf[py as usize * width + px as usize] = colour;
                }
            }
        }
    }
}

/// Draws panels side by side into a top-down RGBA image (save with `sheet::save_sheet`).
pub fn draw(panels: &[Panel], panel_w: usize, panel_h: usize) -> Rgba8 {
    let width = panel_w * panels.len().max(1);
    let mut buf = vec![BG; width * panel_h];
    let (left, right, top, bottom) = (70usize, 20usize, 40usize, 60usize);
    for (k, panel) in panels.iter().enumerate() {
        let x0 = k * panel_w + left;
        let x1 = (k + 1) * panel_w - right;
        let (y0, y1) = (top, panel_h - bottom);
        let pts = panel.series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
        let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            xmin = xmin.min(x);
            xmax = xmax.max(x);
            ymin = ymin.min(y);
            ymax = ymax.max(y);
        }
        if xmin > xmax {
            (xmin, xmax, ymin, ymax) = (0.0, 1.0, 0.0, 1.0);
        }
        let pad = ((ymax - ymin) * 0.05).max(1e-3);
        let (ymin, ymax) = (ymin - pad, ymax + pad);
        let xmax = if xmax > xmin { xmax } else { xmin + 1.0 };
        let to_px = |x: f64, y: f64| -> (f64, f64) {
            (
                x0 as f64 + (x - xmin) / (xmax - xmin) * (x1 - x0) as f64,
                y1 as f64 - (y - ymin) / (ymax - ymin) * (y1 - y0) as f64,
            )
        };
        let yt = ticks(ymin, ymax, 6);
        let ystep = if yt.len() > 1 { yt[1] - yt[0] } else { 1.0 };
        for &v in &yt {
            let (_, py) = to_px(xmin, v);
            line(&mut buf, width, (x0 as f64, py), (x1 as f64, py), GRID, 1);
            let text = label_of(v, ystep);
            let tx = x0.saturating_sub(text_width(&text, 2) + 6);
            draw_text(&mut buf, width, tx, (py as usize).saturating_sub(5), &text, 2, INK);
        }
        let xt = ticks(xmin, xmax, 6);
        let xstep = if xt.len() > 1 { xt[1] - xt[0] } else { 1.0 };
        for &v in &xt {
            let (px, _) = to_px(v, ymin);
            line(&mut buf, width, (px, y0 as f64), (px, y1 as f64), GRID, 1);
            let text = label_of(v, xstep);
            draw_text(&mut buf, width, (px as usize).saturating_sub(text_width(&text, 2) / 2), y1 + 8, &text, 2, INK);
        }
        line(&mut buf, width, (x0 as f64, y1 as f64), (x1 as f64, y1 as f64), INK, 1);
        line(&mut buf, width, (x0 as f64, y0 as f64), (x0 as f64, y1 as f64), INK, 1);
        let title = panel.title.clone();
        draw_text(&mut buf, width, x0 + (x1 - x0).saturating_sub(text_width(&title, 3)) / 2, 10, &title, 3, INK);
        let xl = panel.x_label.clone();
        draw_text(&mut buf, width, x0 + (x1 - x0).saturating_sub(text_width(&xl, 2)) / 2, y1 + 30, &xl, 2, INK);
        draw_text(&mut buf, width, k * panel_w + 4, 24, &panel.y_label, 2, INK);
        for (s_idx, s) in panel.series.iter().enumerate() {
            for w in s.points.windows(2) {
                line(&mut buf, width, to_px(w[0].0, w[0].1), to_px(w[1].0, w[1].1), s.colour, 3);
            }
            for &(x, y) in &s.points {
                let (px, py) = to_px(x, y);
                line(&mut buf, width, (px - 3.0, py), (px + 3.0, py), s.colour, 5);
            }
            // Legend, bottom right inside the axes.
            let ly = y1 - 16 - (panel.series.len() - 1 - s_idx) * 16;
            let name = s.name.clone();
            // One column for all entries: swatches aligned, the widest name ending at the axis.
            let widest = panel.series.iter().map(|s| text_width(&s.name, 2)).max().unwrap_or(0);
            let lx = x1.saturating_sub(widest + 40);
            line(&mut buf, width, (lx as f64, ly as f64 + 4.0), (lx as f64 + 24.0, ly as f64 + 4.0), s.colour, 4);
            draw_text(&mut buf, width, lx + 30, ly, &name, 2, INK);
        }
    }
    Rgba8 { width, height: panel_h, pixels: buf }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(0.913, 0.987, 6);
        assert!(t.iter().all(|v| (0.913..=0.987).contains(v)));
        // A range of 0.074 in about six steps: steps of 0.02 (0.01 would give seven or more).
        assert!((t[1] - t[0] - 0.02).abs() < 1e-12, "{t:?}");
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn a_rising_curve_is_drawn_from_bottom_left_to_top_right() {
        let panel = Panel {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series { name: "a".into(), colour: PALETTE[0], points: vec![(0.0, 0.0), (1.0, 1.0)] }],
        };
        let img = draw(&[panel], 300, 200);
        let coloured: Vec<(usize, usize)> = img
            .pixels
            .iter()
            .enumerate()
            .filter(|(_, p)| **p == PALETTE[0])
            .map(|(k, _)| (k % img.width, k / img.width))
            .collect();
        let leftmost = coloured.iter().min_by_key(|p| p.0).copied().unwrap_or_default();
        let rightmost = coloured.iter().max_by_key(|p| p.0).copied().unwrap_or_default();
        assert!(leftmost.1 > rightmost.1, "screen y shrinks as the curve rises: {leftmost:?} {rightmost:?}");
    }
}
