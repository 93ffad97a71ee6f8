//! Grades as the program stores them: [`Score`] (only 0, 1, 3, 5 exist) and append-only
//! [`GradeEvent`]s.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An inspector's verdict on a candidate (SPEC 4). A type, so that a 2 cannot be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Score {
    /// 0: not a lens.
    No,
    /// 1: not a lens, but interesting (a merger, a ring galaxy...).
    Interesting,
    /// 3: maybe a lens.
    Maybe,
    /// 5: surely a lens.
    Sure,
}

impl Score {
    pub const ALL: [Score; 4] = [Score::No, Score::Interesting, Score::Maybe, Score::Sure];

    pub fn value(self) -> u8 {
        match self {
            Score::No => 0,
            Score::Interesting => 1,
            Score::Maybe => 3,
            Score::Sure => 5,
        }
    }

    pub fn from_value(v: i64) -> Option<Score> {
        match v {
            0 => Some(Score::No),
            1 => Some(Score::Interesting),
            3 => Some(Score::Maybe),
            5 => Some(Score::Sure),
            _ => None,
        }
    }

    /// SWAP's binary reading: 3 and 5 say "lens", 0 and 1 say "not".
    pub fn says_lens(self) -> bool {
        matches!(self, Score::Maybe | Score::Sure)
    }

    pub fn label(self) -> &'static str {
        match self {
            Score::No => "no",
            Score::Interesting => "interesting",
            Score::Maybe => "maybe",
            Score::Sure => "sure",
        }
    }
}

impl TryFrom<u8> for Score {
    type Error = String;
    fn try_from(v: u8) -> Result<Score, String> {
        Score::from_value(v as i64).ok_or_else(|| format!("grade {v} is not one of 0, 1, 3, 5"))
    }
}

impl From<Score> for u8 {
    fn from(s: Score) -> u8 {
        s.value()
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value())
    }
}

/// A point an inspector marked on the image, in pixel coordinates of the cutout (x to the right,
/// y up from FITS row 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MarkedPoint {
    pub x: f32,
    pub y: f32,
}

/// What an inspector did to a candidate, as stored. `score: None` is a retraction (undo).
#[derive(Debug, Clone, PartialEq)]
pub struct GradeEvent {
    pub id: i64,
    /// Globally unique: what makes merging offline packs idempotent.
    pub uid: String,
    pub candidate_id: i64,
    pub inspector_id: i64,
    pub score: Option<Score>,
    /// ISO 8601 UTC with milliseconds.
    pub time: String,
    pub session_id: Option<String>,
    pub comment: Option<String>,
    pub points: Vec<MarkedPoint>,
}

/// A grade to record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewGrade {
    pub candidate_id: i64,
    pub inspector_id: i64,
    pub score: Option<Score>,
    pub session_id: Option<String>,
    pub comment: Option<String>,
    pub points: Vec<MarkedPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Grades without seeing model scores or other people's grades.
    Volunteer,
    /// Sees everything; reviews, retrains, exports.
    Researcher,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Volunteer => "volunteer",
            Role::Researcher => "researcher",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "volunteer" => Some(Role::Volunteer),
            "researcher" => Some(Role::Researcher),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inspector {
    pub id: i64,
    pub name: String,
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_four_grades_exist() {
        for v in 0..=9 {
            assert_eq!(Score::from_value(v).is_some(), [0, 1, 3, 5].contains(&v), "{v}");
        }
        assert!(serde_json::from_str::<Score>("2").is_err());
        assert_eq!(serde_json::from_str::<Score>("3").ok(), Some(Score::Maybe));
    }
}
