//! The lens finder: model files refused for every kind of damage, reproducible training, and
//! learning on an easy problem.

use burn::module::Module;
use burn::tensor::Device;
use lens_inspect::model::checkpoint::{self, ModelCard, ModelFileError};
use lens_inspect::model::data::{Augment, Dataset};
use lens_inspect::model::net::{Arch, LensNet};
use lens_inspect::model::train::{evaluate, train, Quiet, TrainConfig};
use lens_inspect::sim::{SimConfig, Simulator};

/// Tests that seed the device or draw from it take turns: its random numbers are one stream for
/// the whole test process, and `training_is_reproducible_for_a_seed` must not see another test's
/// draws between its two runs.
fn rng_turn() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn tiny_card() -> ModelCard {
    ModelCard::new(Arch::Cnn, 101, 50.0)
}

#[test]
fn model_files_round_trip_and_every_kind_of_damage_is_refused() {
    let _rng = rng_turn();
    let dir = tempfile::tempdir().expect("tmp");
    let device = Device::flex();
    device.seed(3);
    let net = LensNet::new(Arch::Cnn, &device);
    let path = dir.path().join("m.lensmodel");
    checkpoint::save(&path, &net, &tiny_card()).expect("save");
    assert!(path.with_extension("json").exists(), "the card is written beside the model");
    let (back, card) = checkpoint::load(&path, &device).expect("load");
    assert_eq!(card, tiny_card());
    // Same outputs from the same weights.
    let x = burn::tensor::Tensor::<4>::random([2, 4, 101, 101], burn::tensor::Distribution::Default, &device);
    let a: Vec<f32> = net.valid().forward(x.clone()).try_into_vec_as().expect("a");
    let b: Vec<f32> = back.forward(x).try_into_vec_as().expect("b");
    assert_eq!(a, b);

    let bytes = std::fs::read(&path).expect("read");
    let check = |name: &str, data: &[u8], want: fn(&ModelFileError) -> bool| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).expect("write");
        let err = checkpoint::load(&p, &device).err().unwrap_or_else(|| panic!("{name} was accepted"));
        assert!(want(&err), "{name}: {err}");
        assert!(err.to_string().contains(name), "{name}: the message names the file: {err}");
    };
    for cut in [10, 40, bytes.len() / 2, bytes.len() - 3] {
        check(&format!("cut{cut}.lensmodel"), &bytes[..cut], |e| {
            matches!(e, ModelFileError::Truncated { .. } | ModelFileError::Corrupt { .. })
        });
    }
    let mut flipped = bytes.clone();
    let k = flipped.len() - 5000;
    flipped[k] ^= 0x40;
    check("flipped.lensmodel", &flipped, |e| matches!(e, ModelFileError::Corrupt { .. }));
    check("text.lensmodel", b"hello, I am not a model", |e| matches!(e, ModelFileError::NotAModel { .. }));

    // A card with another band order, or another architecture's weights under this card.
    let mut card = tiny_card();
    card.band_order = vec!["g".into(), "r".into(), "i".into(), "u".into()];
    check("bands.lensmodel", &checkpoint::to_bytes(&net, &card).expect("bytes"), |e| {
        matches!(e, ModelFileError::BandOrder { .. })
    });
    let mut card = tiny_card();
    card.conv_channels = vec![8, 8, 16, 16, 32, 32, 64, 64];
    check("channels.lensmodel", &checkpoint::to_bytes(&net, &card).expect("bytes"), |e| {
        matches!(e, ModelFileError::Architecture { .. })
    });
    let card = ModelCard::new(Arch::LensDetector, 101, 50.0);
    check("arch.lensmodel", &checkpoint::to_bytes(&net, &card).expect("bytes"), |e| {
        matches!(e, ModelFileError::Weights { .. })
    });
}

#[test]
fn an_ensemble_file_scores_the_mean_of_its_members_and_refuses_damage() {
    let _rng = rng_turn();
    use lens_inspect::model::score::Scorer;
    let dir = tempfile::tempdir().expect("tmp");
    let device = Device::flex();
    let nets: Vec<LensNet> = (0..3)
        .map(|k| {
            device.seed(10 + k);
            LensNet::new(Arch::Cnn, &device)
        })
        .collect();
    let path = dir.path().join("e.lensmodel");
    checkpoint::save_ensemble(&path, &nets, &tiny_card()).expect("save");
    let (back, card) = checkpoint::load_members(&path, &device).expect("load");
    assert_eq!((back.len(), card.ensemble), (3, 3));
    // The first member is what single-model readers (maps, retraining) get.
    let (first, _) = checkpoint::load(&path, &device).expect("first");
    let data = small_set(6, 4, 101);
    let each: Vec<Vec<f32>> =
        nets.iter().map(|n| Scorer::new(n.clone(), tiny_card()).score_dataset(&data, 4)).collect();
    let ensemble = Scorer::load(&path).expect("scorer").score_dataset(&data, 4);
    for (k, e) in ensemble.iter().enumerate() {
        let mean = (each[0][k] + each[1][k] + each[2][k]) / 3.0;
        assert!((e - mean).abs() < 1e-5, "item {k}: ensemble {e}, mean of members {mean}");
    }
    assert_eq!(Scorer::new(first, tiny_card()).score_dataset(&data, 4), each[0]);
    assert_ne!(each[0], each[1], "the members differ, so the mean is a real test");
    // A single model is still written as format 1, and an ensemble cut short is refused.
    let single = checkpoint::to_bytes(&nets[0], &tiny_card()).expect("bytes");
    assert_eq!(u32::from_le_bytes(single[18..22].try_into().expect("4")), 1);
    let bytes = std::fs::read(&path).expect("read");
    let cut = dir.path().join("cut.lensmodel");
    std::fs::write(&cut, &bytes[..bytes.len() - 100_000.min(bytes.len() / 3)]).expect("write");
    assert!(checkpoint::load_members(&cut, &device).is_err());
}

/// A small labelled set from the simulator, cut to `size` pixels around the centre so tests
/// train in seconds.
fn small_set(n: usize, seed: u64, size: usize) -> Dataset {
    let sim = Simulator::new(SimConfig::default());
    let mut d = Dataset::default();
    for k in 0..n as u64 {
        let o = sim.simulate("x", seed, k, Some(k % 2 == 0));
        let off = (101 - size) / 2;
        let planes: [Vec<f32>; 4] = std::array::from_fn(|b| {
            (0..size * size).map(|p| o.cutout.bands[b][(off + p / size) * 101 + off + p % size]).collect()
        });
        let c = lens_inspect::cutout::Cutout::from_planes(format!("{k}"), size, size, planes);
        d.push(&c, if o.truth.is_lens { 1.0 } else { 0.0 }, 50.0);
    }
    d
}

#[test]
fn training_is_reproducible_for_a_seed() {
    let _rng = rng_turn();
    let data = small_set(24, 9, 48);
    let cfg = TrainConfig { arch: Arch::Cnn, epochs: 2, batch: 8, steps_per_epoch: Some(3), ..Default::default() };
    let a = train(&data, &data, None, &cfg, &mut Quiet).expect("train a");
    let b = train(&data, &data, None, &cfg, &mut Quiet).expect("train b");
    let device = Device::flex();
    let (sa, la) = evaluate(&a.net, &data, 16, &device);
    let (sb, lb) = evaluate(&b.net, &data, 16, &device);
    for (x, y) in sa.iter().zip(&sb) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
    assert!((la - lb).abs() < 1e-6);
    assert_eq!(a.history.len(), b.history.len());
    let c = train(&data, &data, None, &TrainConfig { seed: 2, ..cfg }, &mut Quiet).expect("train c");
    let (sc, _) = evaluate(&c.net, &data, 16, &device);
    assert!(sa.iter().zip(&sc).any(|(x, y)| (x - y).abs() > 1e-4), "another seed trains another model");
}

#[test]
fn the_network_learns_lenses_from_non_lenses() {
    let _rng = rng_turn();
    // Big bright lenses vs lone non-lenses, 48 px: a few hundred steps separate them well.
    let train_set = small_set(192, 21, 48);
    let val = small_set(64, 22, 48);
    let cfg = TrainConfig {
        arch: Arch::Cnn,
        epochs: 6,
        batch: 16,
        lr: 2e-3,
        patience: 6,
        augment: Augment {
            free_rotation: false,
            max_zoom: 1.0,
            max_shift_px: 2.0,
            max_noise: 0.1,
            ..Augment::default()
        },
        ..Default::default()
    };
    let out = train(&train_set, &val, None, &cfg, &mut Quiet).expect("train");
    let best = out.history.iter().find(|r| r.epoch == out.best_epoch).expect("best");
    assert!(best.val_auroc > 0.75, "val AUROC {} after {} epochs", best.val_auroc, out.history.len());
    assert!(out.history.last().expect("epochs").train_loss < out.history[0].train_loss, "the loss falls");
}

/// 32 x 32 cutouts with a white blob (all bands) and a coloured one, both at random places:
/// lenses have a blue one (g band only), non-lenses a red one (i band only). Returns the data,
/// the cutouts and where each coloured blob is.
fn colour_set(n: usize, seed: u64) -> (Dataset, Vec<lens_inspect::cutout::Cutout>, Vec<(f32, f32)>) {
    use rand::{RngExt, SeedableRng};
    let size = 32;
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let mut d = Dataset::default();
    let (mut cutouts, mut spots) = (Vec::new(), Vec::new());
    for k in 0..n {
        let lens = k % 2 == 0;
        let blob = |cx: f32, cy: f32, r: usize, c: usize| {
            (-(((c as f32 - cx).powi(2) + (r as f32 - cy).powi(2)) / 4.0)).exp() * 20.0
        };
        let (wx, wy) = (rng.random_range(5.0..27.0), rng.random_range(5.0..27.0));
        let (cx, cy) = loop {
            let p: (f32, f32) = (rng.random_range(5.0..27.0), rng.random_range(5.0..27.0));
            if (p.0 - wx).hypot(p.1 - wy) > 10.0 {
                break p;
            }
        };
        let colour_band = if lens { 1 } else { 3 };
        let noise: Vec<f32> = (0..4 * size * size).map(|_| rng.random_range(-1.0..1.0)).collect();
        let planes: [Vec<f32>; 4] = std::array::from_fn(|b| {
            (0..size * size)
                .map(|p| {
                    let (r, c) = (p / size, p % size);
                    let coloured = if b == colour_band { blob(cx, cy, r, c) } else { 0.0 };
                    noise[b * size * size + p] + blob(wx, wy, r, c) + coloured
                })
                .collect()
        });
        let cut = lens_inspect::cutout::Cutout::from_planes(format!("{k}"), size, size, planes);
        d.push(&cut, if lens { 1.0 } else { 0.0 }, 50.0);
        cutouts.push(cut);
        spots.push((cx, cy));
    }
    (d, cutouts, spots)
}

/// A small CNN trained on the colour task: (model, validation set, its cutouts, blob centres).
/// Training data uses `seed`, validation `seed + 1`.
fn toy_finder(
    seed: u64,
) -> (lens_inspect::model::train::TrainOutcome, Dataset, Vec<lens_inspect::cutout::Cutout>, Vec<(f32, f32)>) {
    let (train_set, _, _) = colour_set(192, seed);
    let (val, cutouts, spots) = colour_set(16, seed + 1);
    let cfg = TrainConfig {
        arch: Arch::Cnn,
        epochs: 8,
        batch: 16,
        lr: 2e-3,
        patience: 8,
        augment: Augment::none(),
        ..Default::default()
    };
    let out = train(&train_set, &val, None, &cfg, &mut Quiet).expect("train");
    (out, val, cutouts, spots)
}

#[test]
fn gradcam_and_occlusion_point_at_what_makes_the_logit() {
    let _rng = rng_turn();
    use lens_inspect::model::explain::{gradcam, occlusion};
    let (out, _, cutouts, spots) = toy_finder(1);
    let best = out.history.iter().find(|r| r.epoch == out.best_epoch).expect("best");
    assert!(best.val_auroc > 0.9, "the toy task is learnt: {}", best.val_auroc);
    let lenses: Vec<_> = cutouts.iter().step_by(2).cloned().collect();
    let lens_spots: Vec<_> = spots.iter().step_by(2).copied().collect();
    let maps = gradcam(&out.net, &lenses, 50.0, 32).expect("gradcam");
    let size = 32;
    let near = |p: usize, (cx, cy): (f32, f32)| ((p % size) as f32 - cx).hypot((p / size) as f32 - cy) < 8.0;
    let peak_of = |m: &[f32]| m.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(p, _)| p).expect("peak");
    let hits = maps.iter().zip(&lens_spots).filter(|(m, &s)| near(peak_of(m), s)).count();
    assert!(hits * 4 >= maps.len() * 3, "Grad-CAM peaks at the blue blob for {hits} of {}", maps.len());
    let occ = occlusion(&out.net, &lenses[0], 50.0, 32, 6, 2).expect("occlusion");
    assert!(near(peak_of(&occ), lens_spots[0]), "occlusion peaks at pixel {}", peak_of(&occ));
}

#[test]
fn eight_view_test_time_augmentation_makes_scores_rotation_invariant() {
    let _rng = rng_turn();
    use lens_inspect::model::score::predict;
    // Any weights will do: averaging over all 8 symmetries makes the score of an image and of
    // its rotated or mirrored copy the same, which no single view does for a random network.
    let device = Device::flex();
    device.seed(11);
    let net = LensNet::new(Arch::Cnn, &device).valid();
    let size = 32;
    let (data, _, _) = colour_set(4, 7);
    let mut turned = Dataset { size, ..Default::default() };
    let mut mirrored = Dataset { size, ..Default::default() };
    for k in 0..data.len() {
        let item = data.item(k);
        let mut t = vec![0f32; item.len()];
        let mut m = vec![0f32; item.len()];
        for b in 0..4 {
            for r in 0..size {
                for c in 0..size {
                    let v = item[b * size * size + r * size + c];
                    // 90-degree turn: (r, c) -> (c, size - 1 - r); mirror: (r, c) -> (r, size - 1 - c).
                    t[b * size * size + c * size + (size - 1 - r)] = v;
                    m[b * size * size + r * size + (size - 1 - c)] = v;
                }
            }
        }
        turned.inputs.extend(t);
        turned.labels.push(data.labels[k]);
        turned.names.push(String::new());
        mirrored.inputs.extend(m);
        mirrored.labels.push(data.labels[k]);
        mirrored.names.push(String::new());
    }
    let plain = predict(&net, &data, 8, &device, 1);
    let plain_turned = predict(&net, &turned, 8, &device, 1);
    assert!(plain.iter().zip(&plain_turned).any(|(a, b)| (a - b).abs() > 1e-4), "one view is not invariant");
    let all = predict(&net, &data, 8, &device, 8);
    for other in [predict(&net, &turned, 8, &device, 8), predict(&net, &mirrored, 8, &device, 8)] {
        for (a, b) in all.iter().zip(&other) {
            assert!((a - b).abs() < 1e-4, "8 views: {a} vs {b}");
        }
    }
}

#[test]
fn evidence_maps_are_signed_and_point_at_the_lens() {
    let _rng = rng_turn();
    use lens_inspect::model::explain::evidence;
    let (out, val, cutouts, spots) = toy_finder(3);
    let size = 32;
    let maps = evidence(&out.net, &cutouts, 50.0, 32).expect("evidence");
    let near = |p: usize, (cx, cy): (f32, f32)| ((p % size) as f32 - cx).hypot((p / size) as f32 - cy) < 8.0;
    let peak = |m: &[f32]| m.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(p, _)| p).expect("peak");
    let (scores, _) = evaluate(&out.net, &val, 16, &Device::flex());
    let mut hits = 0;
    let mut lenses = 0;
    for (k, m) in maps.iter().enumerate() {
        let total: f32 = m.iter().sum();
        if k % 2 == 0 {
            lenses += 1;
            hits += near(peak(m), spots[k]) as usize;
        }
        // Signed and in logit units: the map's sum follows the score's side of 0.5.
        if scores[k] > 0.9 {
            assert!(total > 0.0, "a confident lens has net evidence for: {total}");
        }
        if scores[k] < 0.1 {
            assert!(m.iter().any(|&v| v < 0.0), "a confident non-lens shows evidence against");
        }
    }
    assert!(hits * 4 >= lenses * 3, "the evidence peaks at the blue blob for {hits} of {lenses}");
}

/// `cutout` placed in a `size`-pixel cutout (larger or smaller, same centre pixel); what it does
/// not cover is NaN, which is masked.
fn recut(cutout: &lens_inspect::cutout::Cutout, size: usize) -> lens_inspect::cutout::Cutout {
    let n = cutout.width;
    let shift = (size / 2) as isize - (n / 2) as isize;
    let planes = std::array::from_fn(|b| {
        let mut plane = vec![f32::NAN; size * size];
        for r in 0..size {
            for c in 0..size {
                let (sr, sc) = (r as isize - shift, c as isize - shift);
                if (0..n as isize).contains(&sr) && (0..n as isize).contains(&sc) {
                    plane[r * size + c] = cutout.bands[b][sr as usize * n + sc as usize];
                }
            }
        }
        plane
    });
    lens_inspect::cutout::Cutout::from_planes(cutout.name.clone(), size, size, planes)
}

#[test]
fn cutouts_of_other_sizes_are_scored_and_explained_on_the_same_centre() {
    use lens_inspect::model::explain::evidence;
    use lens_inspect::model::score::Scorer;
    let scorer = Scorer::shipped().expect("the shipped model");
    assert_eq!(scorer.card.input_size, 101);
    let sim = Simulator::new(SimConfig::default());
    let cutouts: Vec<_> = (0..6).map(|k| sim.simulate(&format!("o{k}"), 404, k, Some(k % 2 == 0)).cutout).collect();
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * (1.0 + a.abs());
    let mut cropping_mattered = false;
    for c in &cutouts {
        let plain = scorer.score(std::slice::from_ref(c), 1)[0];
        // Larger: the same 101 pixels inside a 161-pixel cutout with a masked border. Masked
        // pixels count for no statistics, so cropping back must give the model the same input.
        let big = recut(c, 161);
        assert!(close(scorer.score(std::slice::from_ref(&big), 1)[0], plain), "{}: 161 pixels", c.name);
        // Smaller: the central 61 pixels, against the 101-pixel cutout masked outside them.
        let small = recut(c, 61);
        let masked = recut(&small, 101);
        let (s_small, s_masked) = (scorer.score(std::slice::from_ref(&small), 1)[0], scorer.score(&[masked], 1)[0]);
        assert!(close(s_small, s_masked), "{}: 61 pixels {s_small} against masked {s_masked}", c.name);
        cropping_mattered |= (s_small - plain).abs() > 1e-3;
        // Maps come back on the cutout's own pixels: the 161-pixel map is the 101-pixel one in
        // its middle, 0 where the model did not look.
        let norm = scorer.card.normalisation();
        let m = evidence(&scorer.net, std::slice::from_ref(c), norm, 101).expect("map").remove(0);
        let m_big = evidence(&scorer.net, std::slice::from_ref(&big), norm, 101).expect("map").remove(0);
        assert_eq!(m_big.len(), 161 * 161);
        for r in 0..161 {
            for col in 0..161 {
                let v = m_big[r * 161 + col];
                if (30..131).contains(&r) && (30..131).contains(&col) {
                    assert!(close(v, m[(r - 30) * 101 + col - 30]), "{}: map at ({r}, {col})", c.name);
                } else {
                    assert_eq!(v, 0.0, "{}: outside the model's view at ({r}, {col})", c.name);
                }
            }
        }
    }
    assert!(cropping_mattered, "the test's crops change what the model sees");
}

#[test]
fn a_cutout_of_another_pixel_scale_is_seen_at_the_models() {
    use lens_inspect::cutout::Cutout;
    use lens_inspect::model::explain::evidence;
    use lens_inspect::model::score::Scorer;
    let scorer = Scorer::shipped().expect("the shipped model");
    let sim = Simulator::new(SimConfig::default());
    let norm = scorer.card.normalisation();
    let mut scale_mattered = false;
    for k in 0..6 {
        let c = sim.simulate(&format!("o{k}"), 505, k, Some(k % 2 == 0)).cutout;
        assert_eq!(c.pixel_arcsec, Some(0.2), "the simulator says its scale");
        // The same sky on pixels of 0.1" (each pixel as 2 x 2), as a finer survey's header
        // would say: seen at 0.2", it must score as the original.
        let n = 2 * c.width;
        let planes =
            std::array::from_fn(|b| (0..n * n).map(|p| c.bands[b][(p / n / 2) * c.width + (p % n) / 2]).collect());
        let fine = Cutout::from_planes(c.name.clone(), n, n, planes).with_pixel_scale(Some(0.1));
        let (plain, seen) =
            (scorer.score(std::slice::from_ref(&c), 1)[0], scorer.score(std::slice::from_ref(&fine), 1)[0]);
        assert!((plain - seen).abs() <= 1e-5 * (1.0 + plain.abs()), "{}: {plain} at 0.2\", {seen} from 0.1\"", c.name);
        // Without its scale, the model would see the central half of the field, twice as large.
        let unscaled = fine.clone().with_pixel_scale(None);
        scale_mattered |= (scorer.score(&[unscaled], 1)[0] - plain).abs() > 1e-3;
        // The map comes back on the 0.1" pixels: each 2 x 2 block close to the original's pixel.
        let m = evidence(&scorer.net, std::slice::from_ref(&c), norm, 101).expect("map").remove(0);
        let m_fine = evidence(&scorer.net, std::slice::from_ref(&fine), norm, 101).expect("map").remove(0);
        assert_eq!(m_fine.len(), n * n);
        let top = m.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-6);
        for r in 0..c.width {
            for col in 0..c.width {
                let block = (0..4).map(|q| m_fine[(2 * r + q / 2) * n + 2 * col + q % 2]).sum::<f32>() / 4.0;
                let v = m[r * c.width + col];
                assert!((block - v).abs() < 0.1 * top, "{}: map at ({r}, {col}): {block} against {v}", c.name);
            }
        }
    }
    assert!(scale_mattered, "ignoring the scale changes what the model sees");
}

/// A teacher for `train --teacher`: a fresh network of its own seed, so its scores are nothing
/// like the labels.
fn random_teacher(seed: u64, views: usize, weight: f64) -> lens_inspect::model::train::Teacher {
    let device = Device::flex();
    device.seed(seed);
    let net = LensNet::new(Arch::Cnn, &device);
    // burn draws a new network's weights at their first use: draw them now, from this seed, and
    // not from the training run's random stream in the middle of its first step.
    let _ = net.forward(burn::tensor::Tensor::<4>::zeros([1, 4, 48, 48], &device));
    lens_inspect::model::train::Teacher::new(vec![net], views, weight)
}

#[test]
fn a_teacher_with_the_whole_weight_replaces_the_labels_and_one_with_none_changes_nothing() {
    use lens_inspect::model::train::{train_from, TrainSource};
    let _rng = rng_turn();
    let data = small_set(24, 31, 48);
    let mut flipped = data.clone();
    flipped.labels.iter_mut().for_each(|l| *l = 1.0 - *l);
    let cfg = TrainConfig { arch: Arch::Cnn, epochs: 1, batch: 8, steps_per_epoch: Some(3), ..Default::default() };
    let device = Device::flex();
    let scores = |set: &Dataset, teacher: Option<&lens_inspect::model::train::Teacher>| {
        let out = train_from(TrainSource::Fixed(set), &data, None, teacher, &cfg, &mut Quiet).expect("train");
        evaluate(&out.net, &data, 16, &device).0
    };
    let whole = random_teacher(5, 8, 1.0);
    let (a, b) = (scores(&data, Some(&whole)), scores(&flipped, Some(&whole)));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "labels leaked into a weight-1 teacher's targets: {x} vs {y}");
    }
    let none = random_teacher(5, 8, 0.0);
    let (c, d) = (scores(&data, Some(&none)), scores(&data, None));
    for (x, y) in c.iter().zip(&d) {
        assert!((x - y).abs() < 1e-5, "a weight-0 teacher changed training: {x} vs {y}");
    }
    // And the labels do matter without a teacher, so the first check could fail.
    let e = scores(&flipped, None);
    assert!(d.iter().zip(&e).any(|(x, y)| (x - y).abs() > 1e-4), "flipped labels trained the same model");
}

#[test]
fn the_average_of_all_eight_views_does_not_depend_on_which_way_up_the_image_is() {
    use lens_inspect::model::score::{dihedral, view_mean};
    let _rng = rng_turn();
    let device = Device::flex();
    device.seed(12);
    let net = LensNet::new(Arch::Cnn, &device);
    let x = burn::tensor::Tensor::<4>::random([3, 4, 48, 48], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let all: Vec<f32> = view_mean(&net, x.clone(), 8).try_into_vec_as().expect("8 views");
    for k in 1..8 {
        let turned: Vec<f32> = view_mean(&net, dihedral(x.clone(), k), 8).try_into_vec_as().expect("turned");
        for (a, b) in all.iter().zip(&turned) {
            assert!((a - b).abs() < 1e-5, "symmetry {k}: {a} vs {b}");
        }
    }
    let one: Vec<f32> = view_mean(&net, x.clone(), 1).try_into_vec_as().expect("1 view");
    let plain: Vec<f32> = burn::tensor::activation::sigmoid(net.forward(x)).try_into_vec_as().expect("plain");
    assert_eq!(one, plain, "one view is plain inference");
}

/// A teacher that labelled a fixed set is not asked again at each step when only turns and flips
/// touch the pixels (its 8-view average cannot change under them): training must come out as if
/// it had been asked.
#[test]
fn a_teacher_that_labelled_the_set_trains_as_one_asked_at_every_step() {
    use lens_inspect::model::train::{train_from, TrainSource};
    let _rng = rng_turn();
    let data = small_set(24, 33, 48);
    let cfg = TrainConfig {
        arch: Arch::Cnn,
        epochs: 1,
        batch: 8,
        steps_per_epoch: Some(3),
        augment: Augment::dihedral_only(),
        ..Default::default()
    };
    let mut stored = random_teacher(6, 8, 1.0);
    let asked = random_teacher(6, 8, 1.0);
    let mut taught = data.clone();
    stored.label(&mut taught, 16);
    let device = Device::flex();
    let scores = |teacher: &lens_inspect::model::train::Teacher| {
        let out = train_from(TrainSource::Fixed(&taught), &data, None, Some(teacher), &cfg, &mut Quiet).expect("train");
        evaluate(&out.net, &data, 16, &device).0
    };
    let (a, b) = (scores(&stored), scores(&asked));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4, "stored labels trained another model: {x} vs {y}");
    }
}
