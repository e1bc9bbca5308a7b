//! Line-at-a-time reading shared by the NAV readers: one reused buffer, so a 20 MB history
//! report is never held whole; CRLF and LF both end a line; text that is not UTF-8 is read as
//! Latin-1 rather than rejected, because older AMFI files carry the odd Windows-1252 byte in a
//! scheme name.

use std::io::BufRead;

pub(crate) struct LineReader<R> {
    input: R,
    bytes: Vec<u8>,
    /// The current line without its line end.
    pub(crate) text: String,
    /// 1-based number of the current line.
    pub(crate) number: u64,
}

impl<R: BufRead> LineReader<R> {
    pub(crate) fn new(input: R) -> Self {
        Self {
            input,
            bytes: Vec::with_capacity(256),
            text: String::with_capacity(256),
            number: 0,
        }
    }

    /// Reads the next line into `text`; `Ok(false)` at the end of input.
    pub(crate) fn advance(&mut self) -> std::io::Result<bool> {
        self.bytes.clear();
        if self.input.read_until(b'\n', &mut self.bytes)? == 0 {
            return Ok(false);
        }
        self.number += 1;
        while matches!(self.bytes.last(), Some(b'\n' | b'\r')) {
            self.bytes.pop();
        }
        self.text.clear();
        match std::str::from_utf8(&self.bytes) {
            Ok(s) => self.text.push_str(s),
            Err(_) => self.text.extend(self.bytes.iter().map(|&b| char::from(b))),
        }
        Ok(true)
    }

    /// A blank line, including the single-space lines AMFI puts between sections.
    pub(crate) fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }
}
