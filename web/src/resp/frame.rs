//! Framing of client commands: RESP arrays of bulk strings (what every client library sends)
//! and inline commands (what a person types into `nc`).
//!
//! The limits are checked on the headers, before anything is buffered for them: an array
//! longer than `max_array_len` or a bulk string longer than `max_bulk_bytes` is a protocol error
//! as soon as its header line is complete (the connection is then answered and closed, as Redis
//! does), so a client cannot make the node allocate by announcing a huge length. Once the whole
//! frame is buffered, the `redis-protocol` crate decodes it.

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;

/// The longest inline command (Redis's `PROTO_INLINE_MAX_SIZE`).
pub const MAX_INLINE_BYTES: usize = 64 * 1024;
/// The longest header line (`*<n>` or `$<n>`): a length has at most 20 digits.
const MAX_HEADER_BYTES: usize = 32;

/// A parsed command: its arguments and the number of input bytes it used.
pub type Parsed = (Vec<Vec<u8>>, usize);

/// The limits of one command.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bulk_bytes: usize,
    pub max_array_len: usize,
}

/// Why the input cannot be a command; the text follows Redis's (`Protocol error: …`). The
/// connection is closed after the error is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn err<T>(text: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(text.into()))
}

/// A header line at `buf[at..]`: its value and the index after its CRLF; `None` when the line
/// is not complete yet.
fn header(buf: &[u8], at: usize, what: &str) -> Result<Option<(i64, usize)>, ProtocolError> {
    let rest = &buf[at..];
    let window = &rest[..rest.len().min(MAX_HEADER_BYTES)];
    let Some(cr) = window.iter().position(|b| *b == b'\r') else {
        if rest.len() >= MAX_HEADER_BYTES {
            return err(format!("invalid {what} length"));
        }
        return Ok(None);
    };
    if rest.len() < cr + 2 {
        return Ok(None);
    }
    if rest[cr + 1] != b'\n' {
        return err(format!("invalid {what} length"));
    }
    let digits = &rest[1..cr];
    let value = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<i64>().ok());
    match value {
        Some(v) => Ok(Some((v, at + cr + 2))),
        None => err(format!("invalid {what} length")),
    }
}

/// The next complete command at the start of `buf`: its arguments and the bytes it used.
/// `Ok(None)`: more input is needed. An empty argument list (`*0`, a blank line) is a command
/// with nothing to do.
pub fn next_command(buf: &[u8], limits: Limits) -> Result<Option<Parsed>, ProtocolError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => next_array(buf, limits),
        Some(_) => next_inline(buf),
    }
}

fn next_array(buf: &[u8], limits: Limits) -> Result<Option<Parsed>, ProtocolError> {
    let Some((n, mut at)) = header(buf, 0, "multibulk")? else {
        return Ok(None);
    };
    if n <= 0 {
        // Redis ignores `*0` and `*-1`.
        return Ok(Some((Vec::new(), at)));
    }
    if n as u64 > limits.max_array_len as u64 {
        return err(format!(
            "invalid multibulk length ({n} elements, at most {} accepted)",
            limits.max_array_len
        ));
    }
    // Walk the element headers: each limit is checked before its bytes are awaited.
    for _ in 0..n {
        match buf.get(at) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(other) => return err(format!("expected '$', got '{}'", char::from(*other))),
        }
        let Some((len, data)) = header(buf, at, "bulk")? else {
            return Ok(None);
        };
        if len < 0 || len as u64 > limits.max_bulk_bytes as u64 {
            return err(format!(
                "invalid bulk length ({len} bytes, at most {} accepted)",
                limits.max_bulk_bytes
            ));
        }
        at = data + len as usize + 2;
        if at > buf.len() {
            return Ok(None);
        }
        if &buf[at - 2..at] != b"\r\n" {
            return err("bulk string not terminated by CRLF");
        }
    }
    // The whole frame is here (every CRLF checked above): the codec decodes it.
    let frame = match decode(&buf[..at]) {
        Ok(Some((frame, used))) if used == at => frame,
        Ok(_) => return err("malformed multibulk frame"),
        Err(e) => return err(format!("malformed multibulk frame: {}", e.details())),
    };
    let OwnedFrame::Array(items) = frame else {
        return err("expected a multibulk frame");
    };
    let mut args = Vec::with_capacity(items.len());
    for item in items {
        match item {
            OwnedFrame::BulkString(b) => args.push(b),
            _ => return err("expected bulk strings in a multibulk frame"),
        }
    }
    Ok(Some((args, at)))
}

fn next_inline(buf: &[u8]) -> Result<Option<Parsed>, ProtocolError> {
    let Some(nl) = buf
        .iter()
        .take(MAX_INLINE_BYTES + 1)
        .position(|b| *b == b'\n')
    else {
        if buf.len() > MAX_INLINE_BYTES {
            return err("too big inline request");
        }
        return Ok(None);
    };
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let args = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    Ok(Some((args, nl + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_bulk_bytes: 16,
        max_array_len: 4,
    };

    fn args(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn arrays_of_bulk_strings() {
        let input = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
        let (a, used) = next_command(input, L).unwrap().unwrap();
        assert_eq!(a, args(&["GET", "k"]));
        let (b, used2) = next_command(&input[used..], L).unwrap().unwrap();
        assert_eq!(b, args(&["PING"]));
        assert_eq!(used + used2, input.len());
        // binary-safe
        let bin = b"*1\r\n$3\r\n\x00\r\n\r\n";
        assert_eq!(
            next_command(bin, L).unwrap().unwrap().0,
            vec![b"\x00\r\n".to_vec()]
        );
    }

    #[test]
    fn every_prefix_of_a_frame_asks_for_more() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
        for cut in 0..input.len() {
            assert_eq!(next_command(&input[..cut], L), Ok(None), "cut at {cut}");
        }
        assert!(next_command(input, L).unwrap().is_some());
    }

    #[test]
    fn limits_are_checked_on_the_headers() {
        // a huge array count: refused on its header alone
        let e = next_command(b"*99999999999\r\n", L).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Protocol error: invalid multibulk length"),
            "{e}"
        );
        // an oversized bulk: refused before its bytes arrive
        let e = next_command(b"*1\r\n$17\r\n", L).unwrap_err();
        assert!(e.to_string().contains("invalid bulk length"), "{e}");
        assert!(next_command(b"*1\r\n$-1\r\n", L).is_err());
        // a header without an end
        assert!(next_command(&[b'*'; 40], L).is_err());
        assert!(next_command(b"*1\r\n$abc\r\n", L).is_err());
        assert!(next_command(b"*1\r\n+OK\r\n", L).is_err());
        // a bulk without its CRLF
        assert!(next_command(b"*1\r\n$1\r\nkXY", L).is_err());
    }

    #[test]
    fn inline_commands() {
        let (a, used) = next_command(b"PING\r\nrest", L).unwrap().unwrap();
        assert_eq!((a, used), (args(&["PING"]), 6));
        assert_eq!(
            next_command(b"set  k   v\n", L).unwrap().unwrap().0,
            args(&["set", "k", "v"])
        );
        assert_eq!(next_command(b"PIN", L), Ok(None));
        assert!(next_command(&vec![b'a'; MAX_INLINE_BYTES + 2], L).is_err());
        assert_eq!(
            next_command(b"\r\n", L).unwrap().unwrap().0,
            Vec::<Vec<u8>>::new()
        );
    }
}
