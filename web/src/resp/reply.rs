//! Replies, encoded by the `redis-protocol` crate in the connection's protocol (RESP2 until the
//! client says `HELLO 3`).

use redis_protocol::resp2::types::{OwnedFrame as Frame2, Resp2Frame};
use redis_protocol::resp3::types::{OwnedFrame as Frame3, Resp3Frame};

/// One reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+text`.
    Simple(String),
    /// `-CODE text`.
    Error(String),
    /// `:n`.
    Int(i64),
    /// A bulk string.
    Bulk(Vec<u8>),
    /// The null reply (`$-1` in RESP2, `_` in RESP3).
    Null,
    /// An array.
    Array(Vec<Reply>),
    /// A map (RESP3); a flat array of key, value, … in RESP2.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Self {
        Reply::Simple("OK".into())
    }

    /// An error reply; `text` starts with its code (`ERR`, `WRONGTYPE`, `NOAUTH`, …).
    pub fn error(text: impl Into<String>) -> Self {
        Reply::Error(text.into())
    }

    /// A bulk string from text.
    pub fn text(s: impl Into<String>) -> Self {
        Reply::Bulk(s.into().into_bytes())
    }

    /// A bulk string, or null.
    pub fn bulk_or_null(v: Option<Vec<u8>>) -> Self {
        v.map_or(Reply::Null, Reply::Bulk)
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    fn resp2(self) -> Frame2 {
        match self {
            Reply::Simple(s) => Frame2::SimpleString(s.into_bytes()),
            Reply::Error(s) => Frame2::Error(s),
            Reply::Int(i) => Frame2::Integer(i),
            Reply::Bulk(b) => Frame2::BulkString(b),
            Reply::Null => Frame2::Null,
            Reply::Array(items) => Frame2::Array(items.into_iter().map(Reply::resp2).collect()),
            Reply::Map(pairs) => Frame2::Array(
                pairs
                    .into_iter()
                    .flat_map(|(k, v)| [k.resp2(), v.resp2()])
                    .collect(),
            ),
        }
    }

    fn resp3(self) -> Frame3 {
        match self {
            Reply::Simple(s) => Frame3::SimpleString {
                data: s.into_bytes(),
                attributes: None,
            },
            Reply::Error(s) => Frame3::SimpleError {
                data: s,
                attributes: None,
            },
            Reply::Int(i) => Frame3::Number {
                data: i,
                attributes: None,
            },
            Reply::Bulk(b) => Frame3::BlobString {
                data: b,
                attributes: None,
            },
            Reply::Null => Frame3::Null,
            Reply::Array(items) => Frame3::Array {
                data: items.into_iter().map(Reply::resp3).collect(),
                attributes: None,
            },
            Reply::Map(pairs) => Frame3::Map {
                data: pairs
                    .into_iter()
                    .map(|(k, v)| (k.resp3(), v.resp3()))
                    .collect(),
                attributes: None,
            },
        }
    }

    /// Append the encoding of this reply in protocol `proto` (2 or 3) to `out`.
    pub fn encode(self, proto: u8, out: &mut Vec<u8>) {
        // RESP3 aggregates are written here, their elements in order: the codec's RESP3 map is
        // a `HashMap`, which would send a map's pairs in a random order (Redis sends `HELLO`'s
        // as server, version, proto, id, mode, role, modules).
        match self {
            Reply::Map(pairs) if proto >= 3 => {
                out.extend_from_slice(format!("%{}\r\n", pairs.len()).as_bytes());
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Array(items) if proto >= 3 => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for item in items {
                    item.encode(proto, out);
                }
            }
            other => other.encode_frame(proto, out),
        }
    }

    /// [`Reply::encode`] through the codec.
    fn encode_frame(self, proto: u8, out: &mut Vec<u8>) {
        let start = out.len();
        let written = if proto >= 3 {
            let frame = self.resp3();
            out.resize(start + frame.encode_len(false), 0);
            redis_protocol::resp3::encode::complete::encode(&mut out[start..], &frame, false)
        } else {
            let frame = self.resp2();
            out.resize(start + frame.encode_len(false), 0);
            redis_protocol::resp2::encode::encode(&mut out[start..], &frame, false)
        };
        match written {
            Ok(n) => out.truncate(start + n),
            Err(e) => {
                // Only a frame the codec cannot express (an error text with a CRLF) gets here.
                out.truncate(start);
                let text = format!("-ERR reply not encodable: {}\r\n", e.details());
                out.extend_from_slice(text.replace(['\r', '\n'], " ").trim_end().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: Reply, proto: u8) -> String {
        let mut out = Vec::new();
        r.encode(proto, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn resp2_and_resp3_shapes() {
        assert_eq!(enc(Reply::ok(), 2), "+OK\r\n");
        assert_eq!(enc(Reply::Null, 2), "$-1\r\n");
        assert_eq!(enc(Reply::Null, 3), "_\r\n");
        assert_eq!(enc(Reply::Int(-2), 3), ":-2\r\n");
        assert_eq!(enc(Reply::error("ERR no"), 2), "-ERR no\r\n");
        assert_eq!(enc(Reply::Bulk(b"a\r\nb".to_vec()), 2), "$4\r\na\r\nb\r\n");
        assert_eq!(
            enc(Reply::Array(vec![Reply::text("x"), Reply::Null]), 2),
            "*2\r\n$1\r\nx\r\n$-1\r\n"
        );
        let map = Reply::Map(vec![(Reply::text("proto"), Reply::Int(3))]);
        assert_eq!(enc(map.clone(), 3), "%1\r\n$5\r\nproto\r\n:3\r\n");
        assert_eq!(enc(map, 2), "*2\r\n$5\r\nproto\r\n:3\r\n");
        // a map's pairs in the order given, also nested
        let pairs: Vec<(Reply, Reply)> = (0..16)
            .map(|i| (Reply::text(format!("k{i}")), Reply::Int(i)))
            .collect();
        let mut want = String::from("*2\r\n%16\r\n");
        for i in 0..16 {
            let k = format!("k{i}");
            want.push_str(&format!("${}\r\n{k}\r\n:{i}\r\n", k.len()));
        }
        want.push_str("_\r\n");
        assert_eq!(
            enc(Reply::Array(vec![Reply::Map(pairs), Reply::Null]), 3),
            want
        );
    }
}
