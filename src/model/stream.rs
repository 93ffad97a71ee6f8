//! Training data that is never the same twice: worker threads simulate fresh scenes (domain
//! randomised, [`crate::sim::Ranges`]) while the network trains, and hand them over already
//! preprocessed.
//!
//! Items come out in index order whatever the number of workers (each index is one object of the
//! simulator's run for the stream's seed), so a training run is as reproducible as one on a
//! folder. Workers run ahead of the trainer by at most `capacity` items; the time the trainer
//! spends waiting is measured, so a starving trainer shows in the report.

use crate::cutout::preprocess;
use crate::sim::MixedSimulator;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A source of labelled, preprocessed training items (`4 * size * size` values and a label).
pub trait ItemStream {
    fn next_item(&mut self) -> (Vec<f32>, f32);
    /// Side of the cutouts, pixels.
    fn size(&self) -> usize;
}

/// What a stream has done so far.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StreamStats {
    pub produced: u64,
    pub consumed: u64,
    /// Items simulated per second of one worker's busy time (the rate one core sustains).
    pub per_worker_per_s: f64,
    /// Seconds the trainer waited for an item.
    pub waited_s: f64,
    pub workers: usize,
}

struct Shared {
    ready: Mutex<BTreeMap<u64, (Vec<f32>, f32)>>,
    changed: Condvar,
    /// Next index the trainer will take.
    next_out: AtomicU64,
    /// Next index a worker will claim.
    next_claim: AtomicU64,
    stop: AtomicBool,
    produced: AtomicU64,
    busy_ns: AtomicU64,
}

/// Simulated items on `workers` threads, in index order from `first_index`.
pub struct SimStream {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
    size: usize,
    waited: Duration,
    consumed: u64,
}

impl SimStream {
    /// Starts the workers. Object `k` of the stream is object `k` of the simulator's run with
    /// `seed`, so a resumed run that starts at `first_index` continues the same sequence.
    pub fn start(
        sim: MixedSimulator,
        seed: u64,
        first_index: u64,
        workers: usize,
        capacity: usize,
        norm: crate::cutout::Normalisation,
    ) -> SimStream {
        let size = sim.size();
        let shared = Arc::new(Shared {
            ready: Mutex::new(BTreeMap::new()),
            changed: Condvar::new(),
            next_out: AtomicU64::new(first_index),
            next_claim: AtomicU64::new(first_index),
            stop: AtomicBool::new(false),
            produced: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
        });
        let sim = Arc::new(sim);
        let capacity = capacity.max(1) as u64;
        let threads = (0..workers.max(1))
            .map(|_| {
                let shared = Arc::clone(&shared);
                let sim = Arc::clone(&sim);
                std::thread::spawn(move || worker(&shared, &sim, seed, capacity, norm))
            })
            .collect();
        SimStream { shared, threads, size, waited: Duration::ZERO, consumed: 0 }
    }

    pub fn stats(&self) -> StreamStats {
        let produced = self.shared.produced.load(Ordering::Relaxed);
        let busy = self.shared.busy_ns.load(Ordering::Relaxed) as f64 * 1e-9;
        StreamStats {
            produced,
            consumed: self.consumed,
            per_worker_per_s: if busy > 0.0 { produced as f64 / busy } else { 0.0 },
            waited_s: self.waited.as_secs_f64(),
            workers: self.threads.len(),
        }
    }

    /// The index of the next item the trainer will take (where a resumed run starts).
    pub fn position(&self) -> u64 {
        self.shared.next_out.load(Ordering::SeqCst)
    }
}

fn worker(shared: &Shared, sim: &MixedSimulator, seed: u64, capacity: u64, norm: crate::cutout::Normalisation) {
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        // Claim the next index, but stay within `capacity` of the trainer.
        let k = shared.next_claim.load(Ordering::SeqCst);
        if k >= shared.next_out.load(Ordering::SeqCst) + capacity {
            let ready = shared.ready.lock().unwrap_or_else(|p| p.into_inner());
            let _unused = shared.changed.wait_timeout(ready, Duration::from_millis(50));
            continue;
        }
        if shared.next_claim.compare_exchange(k, k + 1, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            continue;
        }
        let start = Instant::now();
        let obj = sim.simulate(&k.to_string(), seed, k, None);
        let item = (preprocess(&obj.cutout, norm), if obj.truth.is_lens { 1.0 } else { 0.0 });
        shared.busy_ns.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        shared.produced.fetch_add(1, Ordering::Relaxed);
        let mut ready = shared.ready.lock().unwrap_or_else(|p| p.into_inner());
        ready.insert(k, item);
        shared.changed.notify_all();
    }
}

impl ItemStream for SimStream {
    fn next_item(&mut self) -> (Vec<f32>, f32) {
        let k = self.shared.next_out.load(Ordering::SeqCst);
        let start = Instant::now();
        let mut ready = self.shared.ready.lock().unwrap_or_else(|p| p.into_inner());
        let item = loop {
            if let Some(item) = ready.remove(&k) {
                break item;
            }
            // Workers only stop when told to, or when one panicked: then no item will come, and
            // waiting would hang the run instead of reporting the bug.
            assert!(
                !self.threads.iter().all(|t| t.is_finished()),
                "the simulation workers stopped before making item {k} (a worker panicked; see above)"
            );
            ready = self
                .shared
                .changed
                .wait_timeout(ready, Duration::from_millis(200))
                .map_or_else(|p| p.into_inner().0, |r| r.0);
        };
        self.shared.next_out.store(k + 1, Ordering::SeqCst);
        self.shared.changed.notify_all();
        drop(ready);
        self.waited += start.elapsed();
        self.consumed += 1;
        item
    }

    fn size(&self) -> usize {
        self.size
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Look, LookMix, SimConfig, Simulator};

    #[test]
    fn items_come_in_index_order_whatever_the_number_of_workers() {
        let config = SimConfig { size: 33, ..SimConfig::randomised() };
        let take = |workers: usize| -> Vec<(Vec<f32>, f32)> {
            let mut s = SimStream::start(
                MixedSimulator::new(&config, LookMix::single(Look::Randomised)),
                9,
                100,
                workers,
                8,
                50.0.into(),
            );
            (0..12).map(|_| s.next_item()).collect()
        };
        let one = take(1);
        let three = take(3);
        assert_eq!(one, three);
        // And each item is the simulator's object of that index, preprocessed.
        let sim = Simulator::new(config.clone());
        let direct = sim.simulate("x", 9, 105, None);
        assert_eq!(one[5].0, preprocess(&direct.cutout, 50.0));
        assert_eq!(one[5].1, if direct.truth.is_lens { 1.0 } else { 0.0 });
        // A stream resumed at 105 continues the same sequence.
        let mut resumed = SimStream::start(
            MixedSimulator::new(&config, LookMix::single(Look::Randomised)),
            9,
            105,
            2,
            4,
            50.0.into(),
        );
        assert_eq!(resumed.next_item(), one[5]);
        assert_eq!(resumed.position(), 106);
    }
}
