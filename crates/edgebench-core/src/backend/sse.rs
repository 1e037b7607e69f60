//! An incremental Server-Sent Events parser: raw bytes in as they arrive, complete events out.
//! Works on bytes, so an event or a UTF-8 character split across reads is reassembled whole.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when given.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Parser state between reads.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    /// The previous read ended with `\r`: a `\n` starting the next read belongs to it.
    pending_cr: bool,
}

impl SseParser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; appends every event they complete to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) {
        if self.pending_cr {
            self.pending_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(i) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&bytes[..i]);
            let cr = bytes[i] == b'\r';
            bytes = &bytes[i + 1..];
            if cr {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    None => self.pending_cr = true,
                    Some(_) => {}
                }
            }
            // The line buffer is handed back afterwards, so reads do not allocate per line.
            let mut line = std::mem::take(&mut self.line);
            self.line_done(&line, out);
            line.clear();
            self.line = line;
        }
        self.line.extend_from_slice(bytes);
    }

    /// The stream ended: a last event not followed by a blank line is dispatched too (servers
    /// that close right after their final `data:` line are common).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out);
        }
        self.dispatch(out);
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            if self.data.last() == Some(&b'\n') {
                self.data.pop();
            }
            out.push(SseEvent {
                event: self.event.take(),
                data: String::from_utf8_lossy(&self.data).into_owned(),
            });
        }
        self.data.clear();
        self.has_data = false;
        self.event = None;
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return; // comment / keep-alive
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {} // id, retry and unknown fields do not matter here
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        let mut start = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            p.push(&input[start..c], &mut out);
            start = c;
        }
        p.finish(&mut out);
        out
    }

    fn data(v: &[SseEvent]) -> Vec<&str> {
        v.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn several_events_in_one_read() {
        let v = parse_in_pieces(b"data: a\n\ndata: b\n\ndata: [DONE]\n\n", &[]);
        assert_eq!(data(&v), ["a", "b", "[DONE]"]);
    }

    #[test]
    fn one_event_split_across_every_possible_read_boundary() {
        let input = b"data: {\"x\": 1}\r\n\r\n: keep-alive\n\ndata: two\ndata: lines\n\n";
        for cut in 0..input.len() {
            for cut2 in cut..input.len() {
                let v = parse_in_pieces(input, &[cut, cut2]);
                assert_eq!(data(&v), ["{\"x\": 1}", "two\nlines"], "cuts {cut} {cut2}");
            }
        }
    }

    #[test]
    fn utf8_split_across_reads() {
        let input = "data: caf\u{e9} \u{1f600}\n\n".as_bytes();
        for cut in 0..input.len() {
            let v = parse_in_pieces(input, &[cut]);
            assert_eq!(data(&v), ["caf\u{e9} \u{1f600}"], "cut {cut}");
        }
    }

    #[test]
    fn comments_crlf_cr_fields_and_events() {
        let v = parse_in_pieces(b": hi\r\nevent: error\rdata:x\r\rdata\n\nid: 3\n\n", &[]);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].event.as_deref(), Some("error"));
        assert_eq!(v[0].data, "x");
        assert_eq!(v[1].data, "", "a bare `data` field is an empty data line");
    }

    #[test]
    fn a_last_event_without_blank_line_is_dispatched_at_the_end() {
        let v = parse_in_pieces(b"data: a\n\ndata: b", &[]);
        assert_eq!(data(&v), ["a", "b"]);
        assert!(parse_in_pieces(b": only a comment\n", &[]).is_empty());
    }
}
