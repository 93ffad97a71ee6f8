//! Where the transformer encoder's training time goes, at the bench's shapes (batch 32, 144
//! tokens of 128). `cargo run --release --example encoder_times` (`ENCODER_FORWARD_LOOP=1`: only our
//! encoder's training forward, 20 times, for a profiler).
use burn::nn::transformer::{TransformerEncoderConfig, TransformerEncoderInput};
use burn::nn::{Dropout, DropoutConfig, LayerNormConfig};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Distribution, Tensor};

mod timing;
use timing::time;

fn fb<const D: usize>(x: &Tensor<D>, f: impl Fn(Tensor<D>) -> Tensor<D>) -> f64 {
    let g = x.random_like(Distribution::Normal(0.0, 1.0));
    time(|| {
        let x = x.clone().require_grad();
        let grads = (f(x.clone()) * g.clone()).sum().backward();
        let _ = x.grad(&grads).unwrap().into_data();
    })
}

fn main() {
    lens_inspect::alloc::keep_freed_memory();
    let ad = Device::flex().autodiff();
    if std::env::var_os("ENCODER_FORWARD_LOOP").is_some() {
        // For a profiler: our encoder's training forward, over and over.
        let x = Tensor::<3>::random([32, 144, 128], Distribution::Normal(0.0, 1.0), &ad);
        let enc = TransformerEncoderConfig::new(128, 256, 4, 2).with_dropout(0.1).init(&ad);
        for _ in 0..20 {
            let _ = lens_inspect::model::encoder::forward(&enc, x.clone()).into_data();
        }
        return;
    }
    let x = Tensor::<3>::random([32, 144, 128], Distribution::Normal(0.0, 1.0), &ad);
    for dropout in [0.1, 0.0] {
        let enc = TransformerEncoderConfig::new(128, 256, 4, 2).with_dropout(dropout).init(&ad);
        let t = fb(&x, |x| enc.forward(TransformerEncoderInput::new(x)));
        println!("encoder (2 layers) fwd+bwd, dropout {dropout}: {t:.1} ms");
    }
    let enc = TransformerEncoderConfig::new(128, 256, 4, 2).with_dropout(0.1).init(&ad);
    let ours = fb(&x, |x| lens_inspect::model::encoder::forward(&enc, x));
    let ours_f = time(|| {
        let _ = lens_inspect::model::encoder::forward(&enc, x.clone()).into_data();
    });
    println!("ours (2 layers), dropout 0.1: forward {ours_f:.1} ms, forward + backward {ours:.1} ms");
    let plain = Device::flex();
    let xp = Tensor::<3>::random([32, 144, 128], Distribution::Normal(0.0, 1.0), &plain);
    let wp = Tensor::<2>::random([128, 384], Distribution::Normal(0.0, 0.1), &plain);
    let t = time(|| {
        let _ = xp.clone().matmul(wp.clone().unsqueeze()).into_data();
    });
    println!("plain matmul [32,144,128]x[128,384]: {t:.1} ms");
    let qp = Tensor::<4>::random([32, 4, 144, 32], Distribution::Normal(0.0, 1.0), &plain);
    let t = time(|| {
        let _ = qp.clone().matmul(qp.clone().transpose()).into_data();
    });
    println!("plain batched q k^T [32,4,144,32]: {t:.1} ms");
    let heads =
        || xp.clone().matmul(wp.clone().slice([0..128, 0..128]).unsqueeze()).reshape([32, 144, 4, 32]).swap_dims(1, 2);
    let (qs, ks) = (heads(), heads());
    let t = time(|| {
        let _ = qs.clone().matmul(ks.clone().transpose()).into_data();
    });
    println!("plain batched q k^T from swapped heads: {t:.1} ms");
    let sc = qs.clone().matmul(ks.clone().transpose());
    let t = time(|| {
        let _ = sc.clone().matmul(ks.clone()).swap_dims(1, 2).reshape([32, 144, 128]).into_data();
    });
    println!("plain weights x v (swapped) and merge heads: {t:.1} ms");
    let t = time(|| {
        let _ = lens_inspect::model::encoder::forward(
            &TransformerEncoderConfig::new(128, 256, 4, 2).init(&plain),
            xp.clone(),
        )
        .into_data();
    });
    println!("ours, plain device (inference): {t:.1} ms");
    let base = fb(&x, |x| x);
    println!("base (x*g sum backward) [32,144,128]: {base:.1}");
    let s = Tensor::<4>::random([32, 4, 144, 144], Distribution::Normal(0.0, 1.0), &ad);
    println!("base [32,4,144,144]: {:.1}", fb(&s, |x| x));
    println!("softmax [32,4,144,144]: {:.1}", fb(&s, |x| softmax(x, 3)));
    let drop: Dropout = DropoutConfig::new(0.1).init();
    println!("dropout [32,4,144,144]: {:.1}", fb(&s, |x| drop.forward(x)));
    println!("dropout [32,144,128]: {:.1}", fb(&x, |x| drop.forward(x)));
    let h = Tensor::<3>::random([32, 144, 256], Distribution::Normal(0.0, 1.0), &ad);
    println!("base [32,144,256]: {:.1}", fb(&h, |x| x));
    println!("gelu [32,144,256]: {:.1}", fb(&h, gelu));
    let ln = LayerNormConfig::new(128).init(&ad);
    println!("layer norm [32,144,128]: {:.1}", fb(&x, |x| ln.forward(x)));
    let w = Tensor::<2>::random([128, 128], Distribution::Normal(0.0, 0.1), &ad);
    println!("matmul [32*144,128]x[128,128]: {:.1}", fb(&x, |x| x.matmul(w.clone().unsqueeze())));
    let q = Tensor::<4>::random([32, 4, 144, 32], Distribution::Normal(0.0, 1.0), &ad);
    println!("q v [32,4,144,32]: {:.1}", fb(&q, |q| q.clone().matmul(q.clone().transpose()).matmul(q)));
}
