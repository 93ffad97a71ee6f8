//! Active learning: which candidates to ask about next ([`strategies`]) and which labels the
//! grades give ([`labels`]).

pub mod experiment;
pub mod features;
pub mod labels;
pub mod retrain;
pub mod strategies;
