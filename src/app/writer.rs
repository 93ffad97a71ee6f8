//! The grade writer: a thread with its own database connection that records grades, so the GUI
//! thread never waits on the disk (an fsync, or a lock held by the retraining worker while it
//! stores a model). The grade view still shows the next candidate only once the writer reports
//! the grade on disk: "saved" on screen always means saved.

use crate::project::{NewGrade, Project};
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

/// The answer to one write.
pub struct Written {
    pub grade: NewGrade,
    /// The error, named, when the grade is not on disk.
    pub result: Result<(), String>,
}

pub struct GradeWriter {
    requests: Sender<NewGrade>,
    pub done: Receiver<Written>,
}

impl GradeWriter {
    pub fn start(project: PathBuf, repaint: Arc<dyn Fn() + Send + Sync>) -> GradeWriter {
        let (req_tx, req_rx) = channel::<NewGrade>();
        let (done_tx, done_rx) = channel();
        std::thread::Builder::new()
            .name("grade-writer".into())
            .spawn(move || {
                let mut p = Project::open_existing(&project).map_err(|e| e.to_string());
                for grade in req_rx {
                    let result = match &mut p {
                        Ok(p) => p.record_grade(&grade).map(|_| ()).map_err(|e| e.to_string()),
                        Err(e) => Err(e.clone()),
                    };
                    if done_tx.send(Written { grade, result }).is_err() {
                        return;
                    }
                    repaint();
                }
            })
            .expect("spawning the grade writer");
        GradeWriter { requests: req_tx, done: done_rx }
    }

    pub fn write(&self, grade: NewGrade) -> Result<(), String> {
        self.requests.send(grade).map_err(|_| "the grade writer has stopped".to_string())
    }
}
