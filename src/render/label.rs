//! Text for PNG charts and contact sheets, in egui's own bundled font (Ubuntu Light), so the
//! plots a user keeps read like the app: capitals, punctuation, Greek-free but proper type.
//!
//! ab_glyph rasterises the outlines with anti-aliasing; each pixel's coverage blends the colour
//! over what is already in the buffer.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use std::sync::OnceLock;

fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| {
        FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT).expect("egui's bundled font parses")
    })
}

/// Pixel height of the type at `scale` (1 = small print, 2 = tick labels, 3 = titles).
fn px(scale: usize) -> PxScale {
    PxScale::from(6.0 + 5.0 * scale as f32)
}

/// Draws `text` into a top-down RGBA buffer of width `width`, its top-left at (x, y).
/// Characters past the buffer's edges are clipped.
pub fn draw_text(buf: &mut [[u8; 4]], width: usize, x: usize, y: usize, text: &str, scale: usize, colour: [u8; 4]) {
    let height = buf.len() / width.max(1);
    let font = font().as_scaled(px(scale));
    let mut caret = x as f32;
    let baseline = y as f32 + font.ascent();
    let mut previous = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = previous {
            caret += font.kern(p, id);
        }
        let glyph = id.with_scale_and_position(px(scale), ab_glyph::point(caret, baseline));
        caret += font.h_advance(id);
        previous = Some(id);
        let Some(outline) = font.outline_glyph(glyph) else { continue };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let (px, py) = (bounds.min.x as i64 + gx as i64, bounds.min.y as i64 + gy as i64);
            if px < 0 || py < 0 || px as usize >= width || py as usize >= height || coverage <= 0.0 {
                return;
            }
            let a = coverage.min(1.0);
            let dst = &mut buf[py as usize * width + px as usize];
            for ch in 0..3 {
                dst[ch] = (dst[ch] as f32 * (1.0 - a) + colour[ch] as f32 * a).round() as u8;
            }
            dst[3] = dst[3].max((colour[3] as f32 * a).round() as u8);
        });
    }
}

/// Width in pixels of `text` drawn at `scale` (advances and kerning).
pub fn text_width(text: &str, scale: usize) -> usize {
    let font = font().as_scaled(px(scale));
    let mut width = 0.0;
    let mut previous = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = previous {
            width += font.kern(p, id);
        }
        width += font.h_advance(id);
        previous = Some(id);
    }
    width.ceil() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ink(text: &str, scale: usize) -> (Vec<[u8; 4]>, usize) {
        let w = 200;
        let mut buf = vec![[0u8, 0, 0, 255]; w * 40];
        draw_text(&mut buf, w, 5, 5, text, scale, [255, 255, 255, 255]);
        (buf, w)
    }

    fn inked(buf: &[[u8; 4]]) -> Vec<usize> {
        buf.iter().enumerate().filter(|(_, p)| p[0] > 128).map(|(k, _)| k).collect()
    }

    #[test]
    fn capitals_punctuation_and_digits_are_drawn_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for t in ["A", "a", "B", "b", "(", ")", ",", "%", "0", "8", "\u{3b8}"] {
            let (buf, _) = ink(t, 2);
            let pixels = inked(&buf);
            // Every glyph leaves ink, except θ which this font lacks (drawn as nothing, never a
            // panic).
            if t != "\u{3b8}" {
                assert!(!pixels.is_empty(), "{t:?} drew nothing");
                assert!(seen.insert(pixels), "{t:?} looks like another glyph");
            }
        }
    }

    #[test]
    fn text_lands_where_asked_and_measures_what_it_draws() {
        let (buf, w) = ink("TPR10 (AUROC)", 2);
        let pixels = inked(&buf);
        let (xs, ys): (Vec<usize>, Vec<usize>) = pixels.iter().map(|k| (k % w, k / w)).unzip();
        let (x0, x1) = (*xs.iter().min().unwrap(), *xs.iter().max().unwrap());
        let (y0, y1) = (*ys.iter().min().unwrap(), *ys.iter().max().unwrap());
        assert!(x0 >= 5 && y0 >= 5, "drawn from the top-left corner asked: ({x0}, {y0})");
        let width = text_width("TPR10 (AUROC)", 2);
        assert!(x1 <= 5 + width && x1 + 6 >= 5 + width, "ink ends at {x1}, the measure says {}", 5 + width);
        assert!(y1 - y0 >= 10 && y1 - y0 <= 20, "{y0}..{y1}");
        assert!(text_width("AUROC", 3) > text_width("AUROC", 2));
        assert!(text_width("AUROC", 2) > text_width("AURO", 2));
    }

    #[test]
    fn text_past_the_edges_is_clipped_and_the_visible_part_drawn() {
        let w = 30;
        let mut buf = vec![[0u8, 0, 0, 255]; w * 20];
        draw_text(&mut buf, w, 20, 2, "WWWW beyond the buffer", 2, [255; 4]);
        let pixels = inked(&buf);
        assert!(!pixels.is_empty(), "the first W is partly inside");
        assert!(pixels.iter().all(|k| k % w >= 20), "nothing drawn left of the text's start");
    }
}
