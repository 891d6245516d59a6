//! Encoding of every persisted value: one format-version byte, then bincode 2 (serde).
//!
//! Decoding never panics: garbage, a wrong version, a truncated value or trailing bytes all give
//! a [`CodecError`] that names what was being decoded.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The format version written in front of every persisted value.
pub const FORMAT_V1: u8 = 1;

/// Largest value the decoder accepts; bounds allocations driven by corrupt length prefixes.
const DECODE_LIMIT: usize = 256 << 20;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DECODE_LIMIT>,
> {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },
}

/// Encode `value` with the version prefix.
///
/// # Errors
/// When serde refuses the value (never for the types of this crate).
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![FORMAT_V1];
    let body = bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode {
        what,
        reason: e.to_string(),
    })?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decode a version-prefixed value; `what` names it in the error.
///
/// # Errors
/// [`CodecError::Corrupt`] on an empty value, an unknown version, a bincode error or trailing bytes.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    let corrupt = |reason: String| CodecError::Corrupt { what, reason };
    let (&version, body) = bytes
        .split_first()
        .ok_or_else(|| corrupt("empty value".to_string()))?;
    if version != FORMAT_V1 {
        return Err(corrupt(format!(
            "unknown format version {version} (expected {FORMAT_V1})"
        )));
    }
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(body, config())
        .map_err(|e| corrupt(e.to_string()))?;
    if used != body.len() {
        return Err(corrupt(format!(
            "{} trailing bytes after the value",
            body.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::command::Command;

    #[test]
    fn round_trip_and_garbage() {
        let cmd = Command::Delete { key: "k".into() };
        let bytes = encode("command", &cmd).unwrap();
        assert_eq!(decode::<Command>("command", &bytes).unwrap(), cmd);
        let err = decode::<Command>("command", &[]).unwrap_err().to_string();
        assert!(err.contains("corrupt command"), "{err}");
        let err = decode::<Command>("command", &[9, 1, 2])
            .unwrap_err()
            .to_string();
        assert!(err.contains("format version 9"), "{err}");
        let err = decode::<Command>("command", &[FORMAT_V1, 200, 200, 200])
            .unwrap_err()
            .to_string();
        assert!(err.contains("corrupt command"), "{err}");
        let mut trailing = bytes.clone();
        trailing.push(0);
        let err = decode::<Command>("command", &trailing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("trailing"), "{err}");
    }
}
