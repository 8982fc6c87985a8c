//! Printing: errors as one line, warnings once each, progress lines.

use std::collections::HashSet;
use std::io::IsTerminal;

use vs_config::Warning;

/// The error and its causes on one line, without repeating a cause that the
/// message already contains.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out.replace('\n', " ")
}

/// Prints each warning once, on stderr.
pub fn warnings(ws: &[Warning]) {
    let mut seen = HashSet::new();
    for w in ws {
        let line = w.to_string();
        if seen.insert(line.clone()) {
            eprintln!("vserver: warning: {line}");
        }
    }
}

/// Shows progress of a long step: a spinner on a terminal, plain lines
/// otherwise (logs, CI).
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// Starts showing progress for `what`.
    pub fn new(what: &str) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {elapsed:>4} {prefix}: {wide_msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_prefix(what.to_owned());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            Progress { bar: Some(bar) }
        } else {
            eprintln!("{what}...");
            Progress { bar: None }
        }
    }

    /// One line of progress.
    pub fn line(&mut self, line: &str) {
        match &self.bar {
            Some(b) => b.set_message(line.trim().to_owned()),
            None => eprintln!("  {}", line.trim_end()),
        }
    }

    /// Ends the display.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
