//! lens-inspect: grade candidate strong gravitational lenses in survey cutouts, and retrain the
//! lens finder on the grades.
//!
//! The core (everything here but [`app`], the GUI) never touches a window: [`survey`] reads FITS into
//! [`cutout::Cutout`]s, [`render`] draws them, [`project`] keeps candidates and grades in SQLite.

pub mod active;
pub mod alloc;
pub mod app;
pub mod bench;
pub mod consensus;
pub mod cpu_limit;
pub mod cutout;
pub mod demo;
pub mod error_text;
pub mod hash;
pub mod model;
pub mod project;
pub mod queue;
pub mod render;
pub mod sim;
pub mod survey;
pub mod vmath;
