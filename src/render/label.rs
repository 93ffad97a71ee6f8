//! A tiny 3 x 5 bitmap font, enough to label contact sheets and plots without a font file.

/// Glyph rows (top to bottom), 3 bits each, packed into 15 bits (row 0 in bits 14..12).
fn glyph(c: char) -> u16 {
    let rows: [u8; 5] = match c.to_ascii_lowercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'a' => [2, 5, 7, 5, 5],
        'b' => [6, 5, 6, 5, 6],
        'c' => [3, 4, 4, 4, 3],
        'd' => [6, 5, 5, 5, 6],
        'e' => [7, 4, 6, 4, 7],
        'f' => [7, 4, 6, 4, 4],
        'g' => [3, 4, 5, 5, 3],
        'h' => [5, 5, 7, 5, 5],
        'i' => [7, 2, 2, 2, 7],
        'j' => [1, 1, 1, 5, 2],
        'k' => [5, 5, 6, 5, 5],
        'l' => [4, 4, 4, 4, 7],
        'm' => [5, 7, 7, 5, 5],
        'n' => [6, 5, 5, 5, 5],
        'o' => [2, 5, 5, 5, 2],
        'p' => [6, 5, 6, 4, 4],
        'q' => [2, 5, 5, 6, 3],
        'r' => [6, 5, 6, 5, 5],
        's' => [3, 4, 2, 1, 6],
        't' => [7, 2, 2, 2, 2],
        'u' => [5, 5, 5, 5, 7],
        'v' => [5, 5, 5, 5, 2],
        'w' => [5, 5, 7, 7, 5],
        'x' => [5, 5, 2, 5, 5],
        'y' => [5, 5, 2, 2, 2],
        'z' => [7, 1, 2, 4, 7],
        '_' => [0, 0, 0, 0, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '=' => [0, 7, 0, 7, 0],
        ':' => [0, 2, 0, 2, 0],
        '/' => [1, 1, 2, 4, 4],
        _ => [0, 0, 0, 0, 0],
    };
    rows.iter().fold(0u16, |acc, &r| (acc << 3) | r as u16)
}

/// Draws `text` into a top-down RGBA buffer of width `width` at (x, y) (top-left), each font
/// pixel `scale` x `scale` screen pixels. Characters past the right edge are clipped.
pub fn draw_text(buf: &mut [[u8; 4]], width: usize, x: usize, y: usize, text: &str, scale: usize, colour: [u8; 4]) {
    let height = buf.len() / width;
    for (k, c) in text.chars().enumerate() {
        let g = glyph(c);
        for row in 0..5 {
            for col in 0..3 {
                if g >> (14 - (row * 3 + col)) & 1 == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let px = x + (k * 4 + col) * scale + dx;
                        let py = y + row * scale + dy;
                        if px < width && py < height {
                            buf[py * width + px] = colour;
                        }
                    }
                }
            }
        }
    }
}

/// Width in screen pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: usize) -> usize {
    text.chars().count() * 4 * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_are_distinct_and_drawn_where_asked() {
        let chars = "0123456789abcdefghijklmnopqrstuvwxyz_.-=:/";
        let mut seen = std::collections::HashSet::new();
        for c in chars.chars() {
            assert!(seen.insert(glyph(c)), "glyph {c} is not unique");
        }
        let mut buf = vec![[0u8; 4]; 20 * 10];
        draw_text(&mut buf, 20, 2, 1, "1", 1, [255; 4]);
        // '1' = 010 / 110 / 010 / 010 / 111: top row has only its middle pixel.
        assert_eq!(buf[20 + 3], [255; 4]);
        assert_eq!(buf[20 + 2], [0; 4]);
        assert_eq!(buf[5 * 20 + 2], [255; 4]);
    }
}
