//! One line for an error and its causes, each said once.
//!
//! Many of our errors name their cause in their own message (`cannot read model M: No such
//! file`), because the GUI shows an error's message alone. A command line that prints the whole
//! chain (`{:#}`) would then say the cause twice. This prints the chain and leaves out a cause
//! whose text the message before it already ends with.

/// `error` and its sources joined by ": ", a source left out where the text so far already ends
/// with it.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !part.is_empty() && !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("cannot read model {path}: {source}")]
        Says { path: String, source: std::io::Error },
        #[error("cannot read model {path}")]
        Quiet { path: String, source: std::io::Error },
    }

    fn missing() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
    }

    #[test]
    fn a_cause_the_message_already_states_is_said_once_and_one_it_does_not_is_added() {
        let says = Outer::Says { path: "m.lensmodel".into(), source: missing() };
        assert_eq!(one_line(&says), "cannot read model m.lensmodel: No such file or directory");
        let quiet = Outer::Quiet { path: "m.lensmodel".into(), source: missing() };
        assert_eq!(one_line(&quiet), "cannot read model m.lensmodel: No such file or directory");
        // Through anyhow's context, as the commands report them.
        let wrapped = anyhow::Error::new(says).context("reading the teacher m.lensmodel");
        assert_eq!(
            one_line(wrapped.as_ref()),
            "reading the teacher m.lensmodel: cannot read model m.lensmodel: No such file or directory"
        );
    }
}
