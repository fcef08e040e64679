//! How the commands print: one line of JSON with `--json`, or tables and
//! sentences for people, and progress bars on a terminal.

use serde::Serialize;

/// Where a command's result goes: JSON (`--json`) or text for people.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    /// `--json` was given.
    pub(crate) json: bool,
}

impl Out {
    /// Prints `value` as one line of JSON with `--json`; otherwise `text`
    /// prints it for people.
    pub(crate) fn show<T: Serialize + ?Sized>(self, value: &T, text: impl FnOnce(&T)) {
        if self.json {
            println!("{}", serde_json::json!(value));
        } else {
            text(value);
        }
    }
}

/// Prints rows under a header, each column as wide as its widest cell (the
/// last column, free text, is not padded).
pub(crate) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<0$}  ", widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A progress bar on stderr; indicatif hides it when stderr is not a terminal.
pub(crate) fn progress(len: Option<u64>, template: &str) -> indicatif::ProgressBar {
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
