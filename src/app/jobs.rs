//! Workers the GUI talks to through channels: rendering composites and band views ahead of the
//! inspector, activation maps, and long jobs (making the demo project). The GUI thread only sends
//! requests and drains results with `try_recv`; a worker asks for a repaint when it has something.

use crate::cutout::{Band, Cutout};
use crate::model::score::Scorer;
use crate::project::Project;
use crate::render::{self, DisplaySettings, FluxScale, Limits, Rgba8, StretchFn};
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// What to draw for a candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderRequest {
    pub candidate_id: i64,
    pub settings: DisplaySettings,
    /// Also compute the activation map (needs a model).
    pub with_map: bool,
    /// Request generation: results of older generations are dropped by the GUI.
    pub generation: u64,
}

/// A candidate drawn: composite, the four bands (u, g, r, i), and optionally its evidence map
/// (signed, logit units: `model::explain::evidence`).
pub struct Rendered {
    pub candidate_id: i64,
    pub generation: u64,
    pub composite: Rgba8,
    pub bands: Vec<Rgba8>,
    pub map: Option<Vec<f32>>,
    pub error: Option<String>,
    /// A late activation map for a candidate drawn before: merge it, keep the pictures.
    pub map_only: bool,
    /// With the map: how the model saw the cutout when not as the file holds it
    /// ([`crate::model::how_seen`]), said beside the map.
    pub seen: Option<String>,
    /// Bands of the drawn cutout that hold no image, so their black squares can be labelled.
    pub blank_bands: Vec<Band>,
}

/// A small pool of render workers, each with its own read connection to the project.
pub struct Renderer {
    requests: Sender<RenderRequest>,
    pub results: Receiver<Rendered>,
    /// The model the activation maps come from; replaced when retraining keeps a new one.
    scorer: Arc<std::sync::RwLock<Option<Arc<Scorer>>>>,
}

impl Renderer {
    pub fn start(
        project: PathBuf,
        scale: FluxScale,
        scorer: Option<Arc<Scorer>>,
        repaint: Arc<dyn Fn() + Send + Sync>,
        workers: usize,
    ) -> Renderer {
        let (req_tx, req_rx) = channel::<RenderRequest>();
        let (res_tx, res_rx) = channel::<Rendered>();
        let req_rx = Arc::new(Mutex::new(req_rx));
        let shared = Arc::new(std::sync::RwLock::new(scorer));
        for _ in 0..workers.max(1) {
            let (req_rx, res_tx, project, shared, repaint) =
                (req_rx.clone(), res_tx.clone(), project.clone(), shared.clone(), repaint.clone());
            std::thread::spawn(move || {
                let reader = Project::open_existing(&project);
                loop {
                    let next = req_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok(req)) = next else { return };
                    // The picture first, the activation map (slower: a backward pass) after it,
                    // so the next candidate is on screen as soon as its composite exists.
                    let (out, cutout) = match &reader {
                        Ok(p) => render_one(p, &req, scale),
                        Err(e) => (failed(&req, e.to_string()), None),
                    };
                    if res_tx.send(out).is_err() {
                        return;
                    }
                    repaint();
                    let scorer = shared.read().ok().and_then(|s| s.clone());
                    if let (true, Some(s), Some(c)) = (req.with_map, scorer.as_deref(), cutout) {
                        let map = crate::model::explain::evidence(
                            &s.net,
                            std::slice::from_ref(&c),
                            s.card.normalisation(),
                            s.card.input_size,
                        )
                        .ok()
                        .and_then(|mut m| m.pop());
                        if map.is_some() {
                            let blank = Rgba8 { width: 0, height: 0, pixels: vec![] };
                            let seen = crate::model::how_seen(
                                c.width,
                                c.height,
                                c.pixel_arcsec,
                                s.card.input_size,
                                &c.blank_bands(),
                            );
                            let r = Rendered {
                                candidate_id: req.candidate_id,
                                generation: req.generation,
                                composite: blank,
                                bands: vec![],
                                map,
                                error: None,
                                map_only: true,
                                seen,
                                blank_bands: c.blank_bands(),
                            };
                            if res_tx.send(r).is_err() {
                                return;
                            }
                            repaint();
                        }
                    }
                }
            });
        }
        Renderer { requests: req_tx, results: res_rx, scorer: shared }
    }

    /// Later activation maps come from this model.
    pub fn set_scorer(&self, scorer: Arc<Scorer>) {
        if let Ok(mut s) = self.scorer.write() {
            *s = Some(scorer);
        }
    }

    pub fn request(&self, r: RenderRequest) {
        let _ = self.requests.send(r);
    }
}

fn failed(req: &RenderRequest, error: String) -> Rendered {
    let blank = Rgba8 { width: 1, height: 1, pixels: vec![[0, 0, 0, 255]] };
    Rendered {
        candidate_id: req.candidate_id,
        generation: req.generation,
        composite: blank,
        bands: vec![],
        map: None,
        error: Some(error),
        map_only: false,
        seen: None,
        blank_bands: Vec::new(),
    }
}

fn render_one(p: &Project, req: &RenderRequest, scale: FluxScale) -> (Rendered, Option<Cutout>) {
    let cutout: Cutout = match p.candidates_by_ids(&[req.candidate_id]).map(|mut v| v.pop()) {
        Ok(Some(row)) => match p.load_cutout(&row) {
            Ok(c) => c,
            Err(e) => return (failed(req, e.to_string()), None),
        },
        Ok(None) => return (failed(req, format!("candidate {} is gone", req.candidate_id)), None),
        Err(e) => return (failed(req, e.to_string()), None),
    };
    let composite = render::composite(&cutout, &req.settings, scale);
    let bands = Band::ALL.iter().map(|&b| render::band_image(&cutout, b, StretchFn::Linear, Limits::ZScale)).collect();
    let r = Rendered {
        candidate_id: req.candidate_id,
        generation: req.generation,
        composite,
        bands,
        map: None,
        error: None,
        map_only: false,
        seen: None,
        blank_bands: cutout.blank_bands(),
    };
    (r, Some(cutout))
}

/// A one-off background job with progress: (message, fraction) updates, then its result.
pub struct Job<T> {
    pub progress: Receiver<(String, f32)>,
    pub done: Receiver<T>,
}

impl<T: Send + 'static> Job<T> {
    pub fn spawn(
        repaint: Arc<dyn Fn() + Send + Sync>,
        work: impl FnOnce(&(dyn Fn(&str, f32) + Sync)) -> T + Send + 'static,
    ) -> Job<T> {
        let (ptx, prx) = channel();
        let (dtx, drx) = channel();
        std::thread::spawn(move || {
            let ptx = Mutex::new(ptx);
            let r2 = repaint.clone();
            let report = move |m: &str, f: f32| {
                if let Ok(tx) = ptx.lock() {
                    let _ = tx.send((m.to_string(), f));
                }
                r2();
            };
            let out = work(&report);
            let _ = dtx.send(out);
            repaint();
        });
        Job { progress: prx, done: drx }
    }
}
