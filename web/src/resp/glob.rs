//! Redis's glob patterns (`SCAN … MATCH`): `*`, `?`, `[abc]`, `[^a-z]`, `\x`, on bytes.
//! (The `glob` crates match paths, where `*` stops at `/`; Redis's does not.)

/// Whether `s` matches `pattern`.
pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    // Backtracking over the last `*` only: linear for the usual `prefix*` patterns, and never
    // exponential (each `*` restarts the scan at most once per position of `s`).
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, i));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((hit, next)) = class(pattern, p, s[i]) {
                        if hit {
                            p = next;
                            i += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == s[i] {
                        p += 2;
                        i += 1;
                        continue;
                    }
                }
                c => {
                    if c == s[i] {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp + 1;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// The class starting at `pattern[at] == '['`: whether `c` is in it and the index after it.
/// `None` when the class is not closed (then `[` never matches, as in Redis).
fn class(pattern: &[u8], at: usize, c: u8) -> Option<(bool, usize)> {
    let mut p = at + 1;
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut hit = false;
    loop {
        let first = *pattern.get(p)?;
        if first == b']' {
            return Some((hit != negate, p + 1));
        }
        let (lo, step) = if first == b'\\' {
            (*pattern.get(p + 1)?, 2)
        } else {
            (first, 1)
        };
        p += step;
        if pattern.get(p) == Some(&b'-') && pattern.get(p + 1).is_some_and(|b| *b != b']') {
            let hi = pattern[p + 1];
            let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
            hit |= (a..=b).contains(&c);
            p += 2;
        } else {
            hit |= lo == c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn like_redis() {
        let m = |p: &str, s: &str| matches(p.as_bytes(), s.as_bytes());
        assert!(m("sess:*", "sess:abc") && !m("sess:*", "ses:abc"));
        assert!(m("*", "") && m("*", "anything"));
        assert!(m("h?llo", "hello") && !m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo") && !m("h[a-b]llo", "hcllo"));
        assert!(m("a\\*b", "a*b") && !m("a\\*b", "axb"));
        assert!(m("*a*b*c*", "xxaxxbxxc") && !m("*a*b*c*", "xxaxxcxxb"));
        assert!(!m("abc", "abcd") && !m("abcd", "abc"));
        assert!(!m("[abc", "a"));
        // no blow-up on many stars
        let long = "a".repeat(2000);
        assert!(!matches(
            &b"*a"
                .repeat(30)
                .into_iter()
                .chain(*b"b")
                .collect::<Vec<_>>(),
            long.as_bytes()
        ));
    }
}
