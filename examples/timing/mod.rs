//! What the profiling examples share: the timer (one warm-up call, then the mean of five, in
//! milliseconds) and the Lens Detector's convolution layers.

use std::time::Instant;

pub fn time<F: FnMut()>(mut f: F) -> f64 {
    f();
    let n = 5;
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1000.0 / n as f64
}

/// The Lens Detector's 3 x 3 convolutions as (input channels, output channels, side in pixels).
#[allow(dead_code)] // not every example that times things times the convolutions
pub const CONV_LAYERS: [(usize, usize, usize); 8] = [
    (4, 16, 101),
    (16, 16, 101),
    (16, 32, 50),
    (32, 32, 50),
    (32, 64, 25),
    (64, 64, 25),
    (64, 128, 12),
    (128, 128, 12),
];
