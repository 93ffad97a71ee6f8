//! Draws a sample two-panel chart to a PNG, to look at the chart style and its type by eye:
//! `cargo run --release --example chart_preview -- out.png`.

use lens_inspect::render::chart::{draw, Panel, Series, PALETTE};

fn main() {
    let out = std::env::args().nth(1).unwrap_or_else(|| "chart_preview.png".into());
    let curve = |k: f64| (0..10).map(|r| (r as f64 * 30.0, 0.7 + 0.25 * (1.0 - (-(r as f64) / k).exp()))).collect();
    let panel = |title: &str, y: &str| Panel {
        title: title.into(),
        x_label: "Labels used (inspector grades)".into(),
        y_label: y.into(),
        series: vec![
            Series { name: "Random".into(), points: curve(6.0), colour: PALETTE[0] },
            Series { name: "BALD (MC dropout)".into(), points: curve(3.0), colour: PALETTE[1] },
        ],
    };
    let img =
        draw(&[panel("AUROC, held-out part of the pool", "AUROC"), panel("TPR at 10 FP (TPR10)", "TPR10")], 700, 480);
    // Charts are drawn top-down, as contact sheets are (not north-up like cutouts).
    lens_inspect::sim::sheet::save_sheet(std::path::Path::new(&out), &img).expect("writing the PNG");
    println!("{out}");
}
