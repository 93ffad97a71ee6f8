//! The profiling examples' timer: one warm-up call, then the mean of five, in milliseconds.

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
