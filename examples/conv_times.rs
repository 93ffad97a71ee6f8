//! The fused 3 x 3 convolution's three kernels (forward, input gradient, weight gradient) per
//! layer of the Lens Detector at batch 32, in milliseconds and in achieved GFLOP/s: where the
//! matrix products run below the CPU's peak. `cargo run --release --example conv_times`.
use lens_inspect::model::fused::{conv3x3_forward, conv3x3_input_gradient, conv3x3_weight_gradient};

mod timing;
use timing::{time, CONV_LAYERS};

fn main() {
    lens_inspect::alloc::keep_freed_memory();
    if let Ok(Some(level)) = lens_inspect::cpu_limit::level_from_env() {
        lens_inspect::cpu_limit::apply(level).expect("cpu level");
    }
    println!("cpu: {}", lens_inspect::cpu_limit::features_seen());
    let n = 32;
    println!("layer          forward (ms, GFLOP/s)  input grad        weight grad");
    let mut total = [0.0f64; 3];
    for &(ci, co, h) in &CONV_LAYERS {
        let w = h;
        let x: Vec<f32> = (0..n * ci * h * w).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 500.0).collect();
        let dy: Vec<f32> = (0..n * co * h * w).map(|i| ((i * 104729 % 1000) as f32 - 500.0) / 500.0).collect();
        let weight: Vec<f32> = (0..co * ci * 9).map(|i| ((i * 31 % 100) as f32 - 50.0) / 500.0).collect();
        let bias = vec![0.1f32; co];
        let dims = [n, ci, co, h, w];
        let flops = 2.0 * (n * co * ci * 9 * h * w) as f64;
        let f = time(|| {
            std::hint::black_box(conv3x3_forward(&x, &weight, &bias, dims, false));
        });
        let dx = time(|| {
            std::hint::black_box(conv3x3_input_gradient(&dy, &weight, dims));
        });
        let dw = time(|| {
            std::hint::black_box(conv3x3_weight_gradient(&x, &dy, dims));
        });
        let rate = |ms: f64| flops / ms / 1e6;
        println!(
            "{ci:>3}->{co:<3} @{h:<3}  {f:7.1} {:6.1}     {dx:7.1} {:6.1}   {dw:7.1} {:6.1}",
            rate(f),
            rate(dx),
            rate(dw)
        );
        total[0] += f;
        total[1] += dx;
        total[2] += dw;
    }
    println!("total (ms): forward {:.0}, input grad {:.0}, weight grad {:.0}", total[0], total[1], total[2]);
}
