//! The simulator on one thread, the way `bench simulate` sets it beside lenstronomy (KiDS look,
//! every other object a lens), for a profile of that path alone:
//! `N=2000 cargo run --release --example sim_times` (`LENSES=1`: lenses only), or under `perf record` from
//! `target/profiling/examples/sim_times`. Prints cutouts per second, the pixels' sum and a hash of their
//! bits, so a speed-up that changes the output shows it (and the sum shows by how much).
use lens_inspect::sim::{SimConfig, Simulator};
use std::time::Instant;

fn main() {
    lens_inspect::alloc::keep_freed_memory();
    // LENS_INSPECT_CPU=avx2: the AVX2 desktop's code path on an AVX-512 machine, as `--cpu avx2`.
    if let Ok(Some(level)) = lens_inspect::cpu_limit::level_from_env() {
        lens_inspect::cpu_limit::apply(level).expect("cpu level");
    }
    let n: u64 = std::env::var("N").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let sim = Simulator::new(SimConfig::default());
    for k in 0..20 {
        std::hint::black_box(sim.simulate("w", 0, k, None));
    }
    // LENSES=1: lenses only (`bench simulate`'s like-for-like rate beside lenstronomy).
    let lenses_only = std::env::var_os("LENSES").map(|_| true);
    let t = Instant::now();
    // FNV-1a over every pixel's bits: equal only if the images are bit for bit the same.
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut sum = 0.0f64;
    for k in 0..n {
        let o = sim.simulate(&k.to_string(), 2, k, lenses_only);
        for &v in o.cutout.bands.iter().flat_map(|b| b.iter()) {
            hash = (hash ^ v.to_bits() as u64).wrapping_mul(0x100_0000_01b3);
            sum += v as f64;
        }
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{n} cutouts in {s:.2} s: {:.1} cutouts/s on one thread; pixel sum {sum:.6e}, bits hash {hash:016x}",
        n as f64 / s
    );
}
