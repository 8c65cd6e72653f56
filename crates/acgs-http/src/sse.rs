//! A minimal Server-Sent Events reader: `data:` lines of each event joined, events split on a
//! blank line, each event capped so that a hostile stream cannot exhaust memory.
//!
//! Kept by hand rather than taken from `eventsource-stream`: that crate buffers an event until
//! its blank line without a bound, so one endless `data:` line from a hostile server grows
//! memory until the process dies; here an event over [`MAX_EVENT`] ends the stream with an
//! error (`huge_events_are_refused`). `sse-stream` (in the build through rmcp) has no cap either.
//! The reader is 70 lines, and searches each byte once, so a hostile stream of one-byte chunks
//! costs linear time, not quadratic.

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};

/// Largest event accepted.
pub const MAX_EVENT: usize = 1024 * 1024;

/// The `data` of each event of a byte stream.
pub struct Events<S> {
    inner: S,
    buffer: Vec<u8>,
    /// How much of `buffer` is known to hold no blank line: each chunk is searched once, so a
    /// stream of tiny chunks costs linear time, not quadratic.
    searched: usize,
}

impl<S, E> Events<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    /// The events of `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            buffer: Vec::new(),
            searched: 0,
        }
    }

    /// The next event's data; `None` at the end of the stream, `Err(())` when it broke off or an
    /// event was too large.
    pub async fn next(&mut self) -> Option<Result<String, ()>> {
        loop {
            if let Some(end) = find_blank_line(&self.buffer, self.searched) {
                let block: Vec<u8> = self.buffer.drain(..end.0).collect();
                self.buffer.drain(..end.1 - end.0);
                self.searched = 0;
                if let Some(data) = data_of(&block) {
                    return Some(Ok(data));
                }
                continue;
            }
            if self.buffer.len() > MAX_EVENT {
                return Some(Err(()));
            }
            self.searched = self.buffer.len();
            match self.inner.next().await? {
                Ok(chunk) => self.buffer.extend_from_slice(&chunk),
                Err(_) => return Some(Err(())),
            }
        }
    }
}

/// `(end of the event, start of the next)` for the first blank line, searching from a little
/// before `searched` (a separator may straddle the old end).
fn find_blank_line(buf: &[u8], searched: usize) -> Option<(usize, usize)> {
    let from = searched.saturating_sub(3);
    let rest = buf.get(from..)?;
    let lf = rest
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (from + i, from + i + 2));
    let crlf = rest
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (from + i, from + i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn data_of(block: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(block);
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_are_split_and_joined() {
        let chunks: Vec<Result<Bytes, ()>> = vec![
            Ok(Bytes::from_static(b": comment\n\ndata: {\"a\":")),
            Ok(Bytes::from_static(
                b"1}\n\nevent: x\r\ndata: one\r\ndata: two\r\n\r\n",
            )),
        ];
        let mut events = Events::new(futures_util::stream::iter(chunks));
        assert_eq!(events.next().await, Some(Ok("{\"a\":1}".into())));
        assert_eq!(events.next().await, Some(Ok("one\ntwo".into())));
        assert_eq!(events.next().await, None);
    }

    #[tokio::test]
    async fn separators_split_across_chunks_are_found() {
        let chunks: Vec<Result<Bytes, ()>> = b"data: a\r\n\r\ndata: b\n\n"
            .iter()
            .map(|b| Ok(Bytes::copy_from_slice(&[*b])))
            .collect();
        let mut events = Events::new(futures_util::stream::iter(chunks));
        assert_eq!(events.next().await, Some(Ok("a".into())));
        assert_eq!(events.next().await, Some(Ok("b".into())));
        assert_eq!(events.next().await, None);
    }

    #[tokio::test]
    async fn an_event_in_tiny_chunks_is_read_whole() {
        let size = 64 * 1024;
        let mut chunks: Vec<Result<Bytes, ()>> = vec![Ok(Bytes::from_static(b"data: "))];
        chunks.extend((0..size).map(|_| Ok(Bytes::from_static(b"x"))));
        chunks.push(Ok(Bytes::from_static(b"\n\n")));
        let mut events = Events::new(futures_util::stream::iter(chunks));
        let event = events.next().await.expect("an event").expect("whole");
        assert_eq!(event.len(), size);
    }

    #[tokio::test]
    async fn huge_events_are_refused() {
        let chunks: Vec<Result<Bytes, ()>> = (0..20)
            .map(|_| Ok(Bytes::from(vec![b'a'; 100_000])))
            .collect();
        let mut events = Events::new(futures_util::stream::iter(chunks));
        assert_eq!(events.next().await, Some(Err(())));
    }
}
