//! Where one training step of the Lens Detector goes (batch 32): forward with autodiff, backward,
//! and the Adam update, each timed alone. `cargo run --release --example step_times`
//! (`LENS_INSPECT_CPU=avx2` for the AVX2 path, `LENS_INSPECT_CONV=burn` for burn's convolution).
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};
use lens_inspect::model::net::{Arch, LensNet};
use lens_inspect::model::train::bce_with_logits;
use std::time::Instant;

mod timing;

fn main() {
    lens_inspect::alloc::keep_freed_memory();
    if let Ok(Some(level)) = lens_inspect::cpu_limit::level_from_env() {
        lens_inspect::cpu_limit::apply(level).expect("cpu level");
    }
    println!("cpu: {}", lens_inspect::cpu_limit::features_seen());
    let ad = Device::flex().autodiff();
    ad.seed(3);
    let mut net = LensNet::new(Arch::LensDetector, &ad);
    let mut optim = AdamConfig::new().init();
    let x = Tensor::<4>::random([32, 4, 101, 101], Distribution::Normal(0.0, 1.0), &ad);
    let y = Tensor::<1>::random([32], Distribution::Bernoulli(0.5), &ad);
    let (mut tf, mut tb, mut to, mut tbb) = (0.0, 0.0, 0.0, 0.0);
    // STEPS=N for a longer run (a profile of the steady state, after the first touches of memory).
    let steps: usize = std::env::var("STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    // INFER=1: inference at batch 64 (the scorer's path), backbone and head timed apart.
    if std::env::var_os("INFER").is_some() {
        let dev = Device::flex();
        let net = LensNet::new(Arch::LensDetector, &dev);
        let x = Tensor::<4>::random([64, 4, 101, 101], Distribution::Normal(0.0, 1.0), &dev);
        let (mut tb, mut th) = (0.0, 0.0);
        for step in 0..=steps {
            let t = Instant::now();
            let z = net.features(x.clone());
            let _ = z.clone().try_into_vec_as::<f32>();
            let b = t.elapsed().as_secs_f64();
            let p = net.head(z);
            let _ = p.try_into_vec_as::<f32>();
            let h = t.elapsed().as_secs_f64();
            if step > 0 {
                tb += b;
                th += h - b;
            }
        }
        let ms = |v: f64| v * 1000.0 / steps as f64;
        println!("inference, batch 64 (ms): backbone {:.0}, head {:.0}", ms(tb), ms(th));
        return;
    }
    // HEAD=1: the head's parts, each forward + backward from a detached input of its shape.
    if std::env::var_os("HEAD").is_some() {
        let z = Tensor::<4>::random([32, 128, 12, 12], Distribution::Normal(0.0, 1.0), &ad);
        let e = Tensor::<2>::random([32, 128], Distribution::Normal(0.0, 1.0), &ad);
        let g = Tensor::<2>::random([32, 128], Distribution::Normal(0.0, 1.0), &ad);
        let whole = timing::time(|| {
            let zd = z.clone().detach().require_grad();
            let grads = bce_with_logits(net.head(zd.clone()), y.clone()).backward();
            let _ = zd.grad(&grads).map(|t| t.try_into_vec_as::<f32>());
        });
        let forward = timing::time(|| {
            let _ = bce_with_logits(net.head(z.clone().detach()), y.clone()).inner().try_into_vec_as::<f32>();
        });
        let embed = timing::time(|| {
            let zd = z.clone().detach().require_grad();
            let grads = (net.embed(zd.clone()) * g.clone()).sum().backward();
            let _ = zd.grad(&grads).map(|t| t.try_into_vec_as::<f32>());
        });
        let classify = timing::time(|| {
            let ed = e.clone().detach().require_grad();
            let grads = bce_with_logits(net.classify(ed.clone()), y.clone()).backward();
            let _ = ed.grad(&grads).map(|t| t.try_into_vec_as::<f32>());
        });
        // The tokens' layout change plus a positional table, and the mean over tokens, as the
        // head does them around the encoder.
        let table = Tensor::<3>::random([1, 144, 128], Distribution::Normal(0.0, 1.0), &ad);
        let gt = Tensor::<3>::random([32, 144, 128], Distribution::Normal(0.0, 1.0), &ad);
        let tokens = timing::time(|| {
            let zd = z.clone().detach().require_grad();
            let t = zd.clone().reshape([32, 128, 144]).swap_dims(1, 2) + table.clone();
            let grads = (t * gt.clone()).sum().backward();
            let _ = zd.grad(&grads).map(|t| t.try_into_vec_as::<f32>());
        });
        let mean = timing::time(|| {
            let td = gt.clone().detach().require_grad();
            let grads = (td.clone().mean_dim(1).reshape([32, 128]) * g.clone()).sum().backward();
            let _ = td.grad(&grads).map(|t| t.try_into_vec_as::<f32>());
        });
        println!(
            "head of a step of 32 (ms): forward + backward {whole:.0} (forward {forward:.0}); tokens + encoder + \
             mean {embed:.0} (tokens and positions {tokens:.1}, mean {mean:.1}), MLP + loss {classify:.1}"
        );
        return;
    }
    // SPLIT=1: the backbone's and the head's forward + backward timed apart (the head's input
    // detached, its gradient fed back into the backbone).
    if std::env::var_os("SPLIT").is_some() {
        let (mut hb, mut bb) = (0.0, 0.0);
        for step in 0..=steps {
            let t = Instant::now();
            let z = net.features(x.clone());
            let _ = z.clone().inner().try_into_vec_as::<f32>();
            let f0 = t.elapsed().as_secs_f64();
            let zd = z.clone().detach().require_grad();
            let loss = bce_with_logits(net.head(zd.clone()), y.clone());
            let grads = loss.backward();
            let gz = zd.grad(&grads).unwrap();
            let _ = gz.clone().try_into_vec_as::<f32>();
            let h = t.elapsed().as_secs_f64();
            let gz = Tensor::from_inner(gz);
            let grads = (z * gz).sum().backward();
            let _ = grads;
            let b = t.elapsed().as_secs_f64();
            if step > 0 {
                hb += h - f0;
                bb += f0 + (b - h);
            }
        }
        let ms = |v: f64| v * 1000.0 / steps as f64;
        println!(
            "per step of 32 (ms): backbone forward + backward {:.0}, head forward + backward {:.0}",
            ms(bb),
            ms(hb)
        );
        return;
    }
    for step in 0..=steps {
        let t = Instant::now();
        let z = net.features(x.clone());
        let _ = z.clone().inner().try_into_vec_as::<f32>();
        let f0 = t.elapsed().as_secs_f64();
        let loss = bce_with_logits(net.head(z), y.clone());
        let _ = loss.clone().inner().try_into_vec_as::<f32>();
        let f = t.elapsed().as_secs_f64();
        let grads = loss.backward();
        let b = t.elapsed().as_secs_f64();
        let grads = GradientsParams::from_grads(grads, &net);
        net = optim.step(1e-3, net, grads);
        let _ = net.clone().into_record();
        let o = t.elapsed().as_secs_f64();
        if step > 0 {
            tbb += f0;
            tf += f;
            tb += b - f;
            to += o - b;
        }
    }
    let ms = |v: f64| v * 1000.0 / steps as f64;
    println!(
        "per step of 32 (ms): forward {:.0} (backbone {:.0}), backward {:.0}, Adam {:.0}",
        ms(tf),
        ms(tbb),
        ms(tb),
        ms(to)
    );
}
