//! Contact sheets: a labelled grid of composites, for a person to judge the simulations (and any
//! set of cutouts) at a glance.

use crate::cutout::Cutout;
use crate::render::label::{draw_text, text_width};
use crate::render::{composite, flip_rows, DisplaySettings, FluxScale, Rgba8};

/// One tile of a sheet: a cutout and its caption; `highlight` draws a green frame (lenses).
pub struct Tile<'a> {
    pub cutout: &'a Cutout,
    pub caption: String,
    pub highlight: bool,
}

/// Lays tiles out `columns` wide, each composite drawn with the same settings and scale, caption
/// below. Returns a top-down image ready for PNG (no further flip needed: see [`save_sheet`]).
pub fn contact_sheet(tiles: &[Tile], columns: usize, settings: &DisplaySettings, scale: FluxScale) -> Rgba8 {
    let columns = columns.max(1);
    let (w, h) = tiles.first().map(|t| (t.cutout.width, t.cutout.height)).unwrap_or((101, 101));
    let pad = 4;
    // Room for a line of 16-pixel type (descenders included) under each picture.
    let caption_h = 20;
    let cell_w = w + 2 * pad;
    let cell_h = h + 2 * pad + caption_h;
    let rows = tiles.len().div_ceil(columns);
    let (width, height) = (columns * cell_w, rows.max(1) * cell_h);
    let mut buf = vec![[24u8, 24, 28, 255]; width * height];
    for (k, t) in tiles.iter().enumerate() {
        let (cx, cy) = ((k % columns) * cell_w + pad, (k / columns) * cell_h + pad);
        if t.highlight {
            for x in cx - 2..cx + w + 2 {
                for y in [cy - 2, cy - 1, cy + h, cy + h + 1] {
                    buf[y * width + x] = [60, 200, 90, 255];
                }
            }
            for y in cy - 2..cy + h + 2 {
                for x in [cx - 2, cx - 1, cx + w, cx + w + 1] {
                    buf[y * width + x] = [60, 200, 90, 255];
                }
            }
        }
        let img = composite(t.cutout, settings, scale);
        let top_down = flip_rows(&img);
        for row in 0..img.height.min(h) {
            for col in 0..img.width.min(w) {
                buf[(cy + row) * width + cx + col] = top_down[row * img.width + col];
            }
        }
        let text: String = t.caption.chars().take(w / 8).collect();
        let tx = cx + w.saturating_sub(text_width(&text, 2)) / 2;
        draw_text(&mut buf, width, tx, cy + h + 3, &text, 2, [220, 220, 220, 255]);
    }
    Rgba8 { width, height, pixels: buf }
}

/// Saves a sheet from [`contact_sheet`] (already top-down) as PNG.
pub fn save_sheet(path: &std::path::Path, sheet: &Rgba8) -> Result<(), crate::render::RenderError> {
    // save_png flips FITS-ordered images; a sheet is already top-down, so flip it first.
    let as_fits = Rgba8 { width: sheet.width, height: sheet.height, pixels: flip_rows(sheet) };
    crate::render::save_png(path, &as_fits)
}
