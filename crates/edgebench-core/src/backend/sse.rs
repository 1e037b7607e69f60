//! An incremental Server-Sent Events parser: raw bytes in as they arrive, complete events out.
//! Works on bytes, so an event or a UTF-8 character split across reads is reassembled whole; an
//! event may not grow past a size limit (a hostile or broken server cannot make it buffer without
//! end).

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
    /// The most bytes one event (its data and the line being read) may hold.
    max_event_bytes: usize,
}

/// An event grew past the parser's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversized {
    /// Bytes the event held when it passed the limit.
    pub bytes: usize,
    pub limit: usize,
}

impl SseParser {
    /// A parser with nothing buffered and no size limit.
    pub fn new() -> Self {
        Self::with_limit(usize::MAX)
    }

    /// A parser whose events may hold at most `max_event_bytes`.
    pub fn with_limit(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            ..Self::default()
        }
    }

    /// Feeds bytes; appends every event they complete to `out`. Fails, with the events completed
    /// before it still in `out`, when an event passes the limit (the parser is then spent).
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), Oversized> {
        if self.pending_cr {
            self.pending_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(i) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.check(i)?;
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
        self.check(bytes.len())?;
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// Fails when `more` bytes would take the event past the limit (checked before they are
    /// copied, so the buffers never hold more than the limit).
    fn check(&self, more: usize) -> Result<(), Oversized> {
        let bytes = self.line.len() + self.data.len() + more;
        if bytes > self.max_event_bytes {
            return Err(Oversized {
                bytes,
                limit: self.max_event_bytes,
            });
        }
        Ok(())
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
            p.push(&input[start..c], &mut out).unwrap();
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
    fn an_event_past_the_limit_fails_whatever_the_reads() {
        let input = b"data: ok\n\ndata: 0123456789\ndata: 0123456789\n\n";
        for cut in 0..input.len() {
            let mut p = SseParser::with_limit(16);
            let mut out = Vec::new();
            let r = p
                .push(&input[..cut], &mut out)
                .and_then(|()| p.push(&input[cut..], &mut out));
            let e = r.expect_err("the second event holds 22 bytes");
            assert!(e.bytes > 16 && e.bytes <= 16 + input.len(), "{e:?}");
            assert_eq!(data(&out), ["ok"], "cut {cut}");
        }
        // A line that never ends is caught as it grows, not when it ends.
        let mut p = SseParser::with_limit(1000);
        let mut out = Vec::new();
        let chunk = [b'a'; 300];
        assert!(p.push(b"data: ", &mut out).is_ok());
        let fails = (0..10).position(|_| p.push(&chunk, &mut out).is_err());
        assert_eq!(fails, Some(3));
    }

    #[test]
    fn a_last_event_without_blank_line_is_dispatched_at_the_end() {
        let v = parse_in_pieces(b"data: a\n\ndata: b", &[]);
        assert_eq!(data(&v), ["a", "b"]);
        assert!(parse_in_pieces(b": only a comment\n", &[]).is_empty());
    }
}
