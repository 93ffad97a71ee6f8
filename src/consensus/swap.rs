//! SWAP, the Space Warps Analysis Pipeline (Marshall et al. 2016), in its deterministic
//! point-estimate form (SPEC 4): inspector agents learn their skill from training candidates, and
//! each real candidate's lens probability is updated by every grade, weighted by that skill.
//!
//! # Formula
//! Agent: PL = P("lens" | lens), PD = P("not" | not), starting at 0.5 with effective counts 4.
//! On a training candidate that is a lens: PL <- (PL NL + [said lens]) / (1 + NL), NL += 1;
//! on a non-lens: PD <- (PD ND + [said not]) / (1 + ND), ND += 1; then clip to [0.01, 0.99].
//! On a real candidate with posterior p: "lens" multiplies p by PL / (PL p + (1 - PD)(1 - p)),
//! "not" by (1 - PL) / ((1 - PL) p + PD (1 - p)); p is floored at 2e-8.
//! Tested against `shared/reference/swap_stream.json` to 1e-12.

use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SwapConfig {
    pub prior: f64,
    pub start_p: f64,
    pub start_n: f64,
    pub clip: (f64, f64),
    pub floor: f64,
    /// Below this the candidate is rejected ...
    pub reject_below: f64,
    /// ... above this detected.
    pub detect_above: f64,
}

impl Default for SwapConfig {
    fn default() -> SwapConfig {
        SwapConfig {
            prior: 2e-4,
            start_p: 0.5,
            start_n: 4.0,
            clip: (0.01, 0.99),
            floor: 2e-8,
            reject_below: 1e-7,
            detect_above: 0.95,
        }
    }
}

/// One inspector's skill.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Agent {
    pub pl: f64,
    pub pd: f64,
    pub nl: f64,
    pub nd: f64,
}

impl Agent {
    /// Information gain per grade (Marshall et al. 2016 eq. 8's skill, for the prior p0):
    /// the expected change in entropy of a candidate's status from one of this agent's grades.
    pub fn skill(&self, p0: f64) -> f64 {
        let h = |p: f64| if p <= 0.0 || p >= 1.0 { 0.0 } else { -p * p.ln() - (1.0 - p) * (1.0 - p).ln() };
        let (pl, pd) = (self.pl, self.pd);
        let p_yes = pl * p0 + (1.0 - pd) * (1.0 - p0);
        let p_no = 1.0 - p_yes;
        let post_yes = pl * p0 / p_yes.max(1e-300);
        let post_no = (1.0 - pl) * p0 / p_no.max(1e-300);
        h(p0) - (p_yes * h(post_yes) + p_no * h(post_no))
    }
}

/// Where a real candidate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Rejected,
    Detected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Rejected => "rejected",
            Status::Detected => "detected",
        }
    }
}

/// One grade as SWAP reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classification<I, S> {
    pub inspector: I,
    pub subject: S,
    pub says_lens: bool,
    /// `Some(truth)` for a training candidate.
    pub training_truth: Option<bool>,
}

/// SWAP's state: agents and posteriors, updated one classification at a time, in time order.
#[derive(Debug, Clone)]
pub struct Swap<I: std::hash::Hash + Eq + Clone, S: std::hash::Hash + Eq + Clone> {
    pub config: SwapConfig,
    pub agents: HashMap<I, Agent>,
    pub posteriors: HashMap<S, f64>,
}

impl<I: std::hash::Hash + Eq + Clone, S: std::hash::Hash + Eq + Clone> Swap<I, S> {
    pub fn new(config: SwapConfig) -> Self {
        Swap { config, agents: HashMap::new(), posteriors: HashMap::new() }
    }

    pub fn agent(&self, inspector: &I) -> Agent {
        self.agents.get(inspector).copied().unwrap_or(Agent {
            pl: self.config.start_p,
            pd: self.config.start_p,
            nl: self.config.start_n,
            nd: self.config.start_n,
        })
    }

    pub fn posterior(&self, subject: &S) -> f64 {
        self.posteriors.get(subject).copied().unwrap_or(self.config.prior)
    }

    pub fn status(&self, subject: &S) -> Status {
        let p = self.posterior(subject);
        if p < self.config.reject_below {
            Status::Rejected
        } else if p > self.config.detect_above {
            Status::Detected
        } else {
            Status::Open
        }
    }

    /// Applies one classification.
    pub fn update(&mut self, c: &Classification<I, S>) {
        let cfg = self.config;
        let mut a = self.agent(&c.inspector);
        match c.training_truth {
            Some(true) => {
                a.pl = (a.pl * a.nl + c.says_lens as u8 as f64) / (1.0 + a.nl);
                a.nl += 1.0;
                a.pl = a.pl.clamp(cfg.clip.0, cfg.clip.1);
                self.agents.insert(c.inspector.clone(), a);
            }
            Some(false) => {
                a.pd = (a.pd * a.nd + (!c.says_lens) as u8 as f64) / (1.0 + a.nd);
                a.nd += 1.0;
                a.pd = a.pd.clamp(cfg.clip.0, cfg.clip.1);
                self.agents.insert(c.inspector.clone(), a);
            }
            None => {
                let p = self.posterior(&c.subject);
                let factor = if c.says_lens {
                    a.pl / (a.pl * p + (1.0 - a.pd) * (1.0 - p))
                } else {
                    (1.0 - a.pl) / ((1.0 - a.pl) * p + a.pd * (1.0 - p))
                };
                self.posteriors.insert(c.subject.clone(), (p * factor).max(cfg.floor));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_stream() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/swap_stream.json");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("reference")).expect("json");
        let prior = doc["prior"].as_f64().expect("prior");
        let mut swap: Swap<i64, i64> = Swap::new(SwapConfig { prior, ..SwapConfig::default() });
        let events = doc["events"].as_array().expect("events");
        assert!(events.len() > 100);
        for (k, e) in events.iter().enumerate() {
            let inspector = e["inspector"].as_i64().expect("inspector");
            let subject = e["subject"].as_i64().expect("subject");
            let training = e["training"].as_bool().expect("training");
            let c = Classification {
                inspector,
                subject,
                says_lens: e["says_lens"].as_bool().expect("says"),
                training_truth: if training { e["truth_is_lens"].as_bool() } else { None },
            };
            swap.update(&c);
            let a = swap.agent(&inspector);
            assert!((a.pl - e["after_PL"].as_f64().expect("PL")).abs() < 1e-12, "event {k}: PL");
            assert!((a.pd - e["after_PD"].as_f64().expect("PD")).abs() < 1e-12, "event {k}: PD");
            if let Some(p) = e["after_posterior"].as_f64() {
                assert!((swap.posterior(&subject) - p).abs() < 1e-12 * p.max(1e-300).max(1.0), "event {k}: posterior");
            }
        }
    }

    #[test]
    fn a_perfect_agent_is_skilled_and_a_random_one_is_not() {
        let perfect = Agent { pl: 0.99, pd: 0.99, nl: 100.0, nd: 100.0 };
        let random = Agent { pl: 0.5, pd: 0.5, nl: 4.0, nd: 4.0 };
        assert!(perfect.skill(2e-4) > 0.0);
        assert!(random.skill(2e-4).abs() < 1e-15);
    }
}
