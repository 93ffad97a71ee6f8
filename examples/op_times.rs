//! Where a training step's time goes: each layer's forward and forward+backward at the bench's
//! shapes (batch 32, 4 x 101 x 101). `cargo run --release --example op_times`.
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::BatchNormConfig;
use burn::tensor::activation::elu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};

mod timing;
use timing::{time, CONV_LAYERS};

fn main() {
    lens_inspect::alloc::keep_freed_memory();
    let ad = Device::flex().autodiff();
    let dev = Device::flex();
    let mut total = [0.0f64; 6];
    println!("layer      conv_f  conv_fb  conv_dw  conv_dx  bn_fb  elu_fb  pool_fb");
    for (k, &(ci, co, h)) in CONV_LAYERS.iter().enumerate() {
        let opts = || ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let xd = Tensor::<4>::random([32, ci, h, h], Distribution::Normal(0.0, 1.0), &dev);
        let wd = Tensor::<4>::random([co, ci, 3, 3], Distribution::Normal(0.0, 0.1), &dev);
        let cf = time(|| {
            let _ = conv2d(xd.clone(), wd.clone(), None, opts()).into_data();
        });
        let x = Tensor::<4>::random([32, ci, h, h], Distribution::Normal(0.0, 1.0), &ad);
        let w = Tensor::<4>::random([co, ci, 3, 3], Distribution::Normal(0.0, 0.1), &ad);
        let g = Tensor::<4>::random([32, co, h, h], Distribution::Normal(0.0, 1.0), &ad);
        let cfb = time(|| {
            let x = x.clone().require_grad();
            let w = w.clone().require_grad();
            let y = conv2d(x.clone(), w.clone(), None, opts());
            let grads = (y * g.clone()).sum().backward();
            let _ = w.grad(&grads).unwrap().into_data();
            let _ = x.grad(&grads).unwrap().into_data();
        });
        let cdw = time(|| {
            let w = w.clone().require_grad();
            let y = conv2d(x.clone(), w.clone(), None, opts());
            let grads = (y * g.clone()).sum().backward();
            let _ = w.grad(&grads).unwrap().into_data();
        });
        let cdx = time(|| {
            let x = x.clone().require_grad();
            let y = conv2d(x.clone(), w.clone(), None, opts());
            let grads = (y * g.clone()).sum().backward();
            let _ = x.grad(&grads).unwrap().into_data();
        });
        let bn = BatchNormConfig::new(co).init(&ad);
        let y = Tensor::<4>::random([32, co, h, h], Distribution::Normal(0.0, 1.0), &ad);
        let bnt = time(|| {
            let y = y.clone().require_grad();
            let grads = (bn.forward(y.clone()) * g.clone()).sum().backward();
            let _ = y.grad(&grads).unwrap().into_data();
        });
        let elut = time(|| {
            let y = y.clone().require_grad();
            let grads = (elu(y.clone(), 1.0) * g.clone()).sum().backward();
            let _ = y.grad(&grads).unwrap().into_data();
        });
        let base = time(|| {
            let y = y.clone().require_grad();
            let grads = (y.clone() * g.clone()).sum().backward();
            let _ = y.grad(&grads).unwrap().into_data();
        });
        let elu_clamp = time(|| {
            let y = y.clone().require_grad();
            let grads = (lens_inspect::model::net::elu1(y.clone()) * g.clone()).sum().backward();
            let _ = y.grad(&grads).unwrap().into_data();
        });
        let relu = time(|| {
            let y = y.clone().require_grad();
            let grads = (burn::tensor::activation::relu(y.clone()) * g.clone()).sum().backward();
            let _ = y.grad(&grads).unwrap().into_data();
        });
        let fwd_elu = time(|| {
            let _ = elu(y.clone().inner(), 1.0).into_data();
        });
        let fusedt = time(|| {
            let y = y.clone().require_grad();
            let out = lens_inspect::model::fused::batch_norm_elu_train(y.clone(), bn.gamma.val(), bn.beta.val(), 1e-5)
                .unwrap_or_else(|_| panic!("fused op"));
            let grads = (out.output * g.clone()).sum().backward();
            let _ = y.grad(&grads).unwrap().into_data();
        });
        let fused_inf = time(|| {
            let _ = lens_inspect::model::fused::elu_inference(y.clone().inner())
                .unwrap_or_else(|_| panic!("fused op"))
                .into_data();
        });
        println!("   fused bn+elu fb {fusedt:.1} fused elu inference {fused_inf:.1}");
        println!("   base {base:.1} elu1 {elu_clamp:.1} relu {relu:.1} elu-fwd-only {fwd_elu:.1}");
        let pool = MaxPool2dConfig::new([2, 2]).init();
        let poolt = if k % 2 == 1 && k < 6 {
            time(|| {
                let y = y.clone().require_grad();
                let p = pool.forward(y.clone());
                let gp = p.ones_like();
                let grads = (p * gp).sum().backward();
                let _ = y.grad(&grads).unwrap().into_data();
            })
        } else {
            0.0
        };
        println!("{ci:>3}->{co:<3}@{h:<3} {cf:7.1} {cfb:8.1} {cdw:8.1} {cdx:8.1} {bnt:6.1} {elut:7.1} {poolt:8.1}");
        for (t, v) in total.iter_mut().zip([cf, cfb, cdw, cdx, bnt, elut + poolt]) {
            *t += v;
        }
    }
    println!(
        "total (ms): conv_f {:.0} conv_fb {:.0} conv_dw {:.0} conv_dx {:.0} bn {:.0} elu+pool {:.0}",
        total[0], total[1], total[2], total[3], total[4], total[5]
    );
}
