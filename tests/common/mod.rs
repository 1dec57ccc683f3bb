//! Helpers shared by the integration tests: files on disk and a naive reference of the
//! line rules, written as plainly as possible so the index can be checked against it.
#![allow(dead_code)]

use std::io::Write;

/// A temporary file holding `bytes`.
pub fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    f
}

/// One physical line of the reference split: (1-based number, start offset, bytes with terminator).
pub struct RefLine<'a> {
    pub number: u64,
    pub start: u64,
    pub bytes: &'a [u8],
}

/// The kept lines of `bytes` under the original class's rules, its defects fixed.
pub fn reference_lines(bytes: &[u8], skip_blank: bool, comment: Option<u8>) -> Vec<RefLine<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut number = 0;
    while start < bytes.len() {
        let end = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(p) => start + p + 1,
            None => bytes.len(),
        };
        let line = &bytes[start..end];
        number += 1;
        let blank = line.iter().all(|b| b" \t\r\n\x0b\x0c".contains(b));
        let comment_line = comment == Some(line[0]);
        if !(comment_line || skip_blank && blank) {
            out.push(RefLine { number, start: start as u64, bytes: line });
        }
        start = end;
    }
    out
}

/// `line` without its `\n` or `\r\n`.
pub fn strip_terminator(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").map(|l| l.strip_suffix(b"\r").unwrap_or(l)).unwrap_or(line);
    line
}
