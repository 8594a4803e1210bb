//! Where `rdv`'s answers go: a [`Sink`] takes them one at a time; the [`Printer`] prints them
//! as text or JSON lines (warnings on stderr as text, on stdout as JSON).

use super::output::Output;
use crate::ClientError;

/// Where a command's answers go, one [`Output`] at a time.
pub trait Sink {
    /// Takes one answer.
    fn emit(&mut self, output: Output);

    /// Takes a warning that is not the command's answer (directory alarms, a monitoring
    /// failure): printed on stderr as text, as a line like any other in JSON.
    fn warn(&mut self, output: Output) {
        self.emit(output);
    }
}

/// Collects answers (for tests and programs that run commands).
impl Sink for Vec<Output> {
    fn emit(&mut self, output: Output) {
        self.push(output);
    }
}

/// Prints answers on stdout, as text or JSON lines; [`Printer::fail`] prints the final error.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    json: bool,
}

impl Printer {
    /// A printer of JSON lines (`json`) or text.
    pub fn new(json: bool) -> Self {
        Printer { json }
    }

    /// The line(s) printed for `output`.
    pub fn render(&self, output: &Output) -> String {
        if self.json {
            output.to_json()
        } else {
            output.to_text()
        }
    }

    /// Prints the error that ends the command: with `--json`, exactly one JSON object on stdout;
    /// else one line on stderr.
    pub fn fail(&self, e: &ClientError) {
        let line = self.render(&Output::error(e, None));
        if self.json {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

impl Sink for Printer {
    fn emit(&mut self, output: Output) {
        println!("{}", self.render(&output));
    }

    fn warn(&mut self, output: Output) {
        if self.json {
            println!("{}", self.render(&output));
        } else {
            eprintln!("{}", self.render(&output));
        }
    }
}
