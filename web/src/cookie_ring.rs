//! The session cookie's key ring: several cookie keys, newest first.
//!
//! actix-session encrypts and decrypts the session cookie with one key. [`CookieRing`] is a
//! middleware that runs before it and looks at the request's session cookie:
//! - decrypts under the newest key: passed on untouched;
//! - decrypts under an older key of the ring: re-encrypted under the newest key in the request,
//!   so actix-session reads it, and the response sets it under the newest key (unless the
//!   session middleware set or removed the cookie itself), counted as re-issued;
//! - decrypts under no key of the ring (forged, truncated, re-signed with another key, or under a
//!   retired key), or longer than [`MAX_COOKIE_VALUE_BYTES`]: removed from the request, so the
//!   request starts a fresh session; counted and logged by a hash of the value, never the value.
//!
//! Retiring a key (dropping it from the ring) thereby logs out exactly the sessions whose cookie
//! was not re-issued since the newer key arrived.
//!
//! The verdict on a cookie is a function of its text and the ring, and the ring never changes
//! while a node runs: each worker remembers the cookies it found current lately
//! ([`CurrentCookies`]), so a client's next request with the same cookie — every read, until a
//! write re-issues it — is passed on without decrypting it here (actix-session decrypts it once
//! more; one AES-GCM decryption instead of two per request).

use std::cell::RefCell;
use std::collections::HashSet;
use std::future::{ready, Ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::cookie::{Cookie, CookieJar, Key};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderMap, HeaderValue, COOKIE};
use futures_util::future::LocalBoxFuture;

use crate::metrics::Metrics;
use sessionraft_raft::clock::key_hash;

/// A session cookie value longer than this is refused (browsers keep at most 4,096 bytes per
/// cookie; ours is ~100).
pub const MAX_COOKIE_VALUE_BYTES: usize = 4096;

/// What became of a request's session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Under the newest key.
    Current,
    /// Under an older key: this is the value under the newest key.
    Reissued(String),
    /// Under no key of the ring, or oversized: dropped.
    Refused(&'static str),
}

/// The key ring and the cookie's name.
#[derive(Clone)]
pub struct CookieRing {
    inner: Arc<RingInner>,
}

struct RingInner {
    name: String,
    keys: Vec<Key>,
    secure: bool,
    metrics: Option<Arc<Metrics>>,
}

impl CookieRing {
    /// A ring for cookie `name`; `keys` newest first (at least one); `secure`: re-issued
    /// cookies carry `Secure` (the session middleware's other attributes are fixed: `HttpOnly`,
    /// `SameSite=Lax`, `Path=/`, no `Domain`, no `Max-Age`).
    pub fn new(
        name: impl Into<String>,
        keys: Vec<Key>,
        secure: bool,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self {
            inner: Arc::new(RingInner {
                name: name.into(),
                keys,
                secure,
                metrics,
            }),
        }
    }

    /// The `Set-Cookie` of a re-issued session cookie (value already encrypted).
    fn reissued_cookie(&self, value: String) -> Cookie<'static> {
        let mut c = Cookie::new(self.inner.name.clone(), value);
        c.set_http_only(true);
        c.set_secure(self.inner.secure);
        c.set_same_site(actix_web::cookie::SameSite::Lax);
        c.set_path("/");
        c
    }

    /// Decide about one session cookie value.
    pub fn judge(&self, value: &str) -> Verdict {
        let r = &self.inner;
        if value.len() > MAX_COOKIE_VALUE_BYTES {
            return Verdict::Refused("oversized");
        }
        let Some((newest, older)) = r.keys.split_first() else {
            return Verdict::Refused("undecryptable");
        };
        if decrypt(&r.name, newest, value).is_some() {
            return Verdict::Current;
        }
        for key in older {
            if let Some(plain) = decrypt(&r.name, key, value) {
                return Verdict::Reissued(encrypt(&r.name, newest, plain));
            }
        }
        Verdict::Refused("undecryptable")
    }

    /// Rewrite one `Cookie` header value; `None` when it needs no change. Values are
    /// percent-decoded as actix-web does (`Cookie::parse_encoded`) before they are judged. A
    /// re-issued value is also left in `reissued`; a session cookie found current is added
    /// (as its `name=value` text) to `current`.
    fn rewrite(
        &self,
        header: &str,
        reissued: &mut Option<String>,
        current: &mut CurrentCookies,
    ) -> Option<String> {
        let name = &self.inner.name;
        let mut changed = false;
        let mut out: Vec<String> = Vec::new();
        for pair in header.split(';') {
            let trimmed = pair.trim();
            let Some((n, raw)) = trimmed.split_once('=') else {
                out.push(trimmed.to_string());
                continue;
            };
            if n.trim() != name.as_str() {
                out.push(trimmed.to_string());
                continue;
            }
            let decoded = Cookie::parse_encoded(trimmed.to_string())
                .map(|c| c.value().to_string())
                .unwrap_or_else(|_| raw.trim().to_string());
            match self.judge(&decoded) {
                Verdict::Current => {
                    current.remember(trimmed);
                    out.push(trimmed.to_string());
                }
                Verdict::Reissued(value) => {
                    changed = true;
                    self.count_reissued();
                    out.push(
                        Cookie::new(name.clone(), value.clone())
                            .encoded()
                            .to_string(),
                    );
                    *reissued = Some(value);
                }
                Verdict::Refused(reason) => {
                    changed = true;
                    self.count_refused(reason);
                    tracing::info!(
                        reason,
                        cookie = %key_hash(raw),
                        "session cookie refused; starting a fresh session"
                    );
                }
            }
        }
        changed.then(|| out.join("; "))
    }

    fn count_reissued(&self) {
        if let Some(m) = &self.inner.metrics {
            m.cookies_reissued.inc();
        }
    }

    fn count_refused(&self, reason: &str) {
        if let Some(m) = &self.inner.metrics {
            m.unknown_session_ids.with_label_values(&[reason]).inc();
        }
    }

    /// Whether every session cookie in `headers` (there may be none) is one `current` holds:
    /// then [`CookieRing::apply`] would change nothing. No allocation, no decryption.
    fn all_known_current(&self, headers: &HeaderMap, current: &CurrentCookies) -> bool {
        let name = self.inner.name.as_str();
        headers.get_all(COOKIE).all(|v| {
            let Ok(header) = v.to_str() else {
                return false;
            };
            header.split(';').all(|pair| {
                let trimmed = pair.trim();
                match trimmed.split_once('=') {
                    Some((n, _)) if n.trim() == name => current.contains(trimmed),
                    _ => true,
                }
            })
        })
    }

    /// Rewrite the request's cookies; answers the re-issued value, if any. Session cookies
    /// found current are remembered in `current`; when every one is known there, nothing is
    /// judged again.
    fn apply(&self, req: &mut ServiceRequest, current: &mut CurrentCookies) -> Option<String> {
        if self.all_known_current(req.headers(), current) {
            return None;
        }
        let headers = req.headers_mut();
        let values: Vec<HeaderValue> = headers.get_all(COOKIE).cloned().collect();
        let mut reissued = None;
        if values.is_empty() {
            return reissued;
        }
        let mut any = false;
        let mut rewritten = Vec::with_capacity(values.len());
        for v in &values {
            match v
                .to_str()
                .ok()
                .and_then(|s| self.rewrite(s, &mut reissued, current))
            {
                Some(new) => {
                    any = true;
                    if !new.is_empty() {
                        if let Ok(hv) = HeaderValue::from_str(&new) {
                            rewritten.push(hv);
                        }
                    }
                }
                None => rewritten.push(v.clone()),
            }
        }
        if any {
            headers.remove(COOKIE);
            for hv in rewritten {
                headers.append(COOKIE, hv);
            }
        }
        reissued
    }
}

/// The session cookies (`name=value`, as they appear in a `Cookie` header) a worker found
/// current under the newest key lately: at most [`CurrentCookies::CAPACITY`], forgotten all at
/// once when full (a forgotten one is judged again, nothing else). Only a current verdict is
/// remembered: a cookie that is re-issued or refused is judged, counted and logged every time.
pub struct CurrentCookies {
    seen: HashSet<Box<str>>,
}

impl CurrentCookies {
    /// How many are remembered per worker (~100 bytes each).
    pub const CAPACITY: usize = 4096;

    fn new() -> Self {
        Self {
            seen: HashSet::new(),
        }
    }

    fn contains(&self, pair: &str) -> bool {
        self.seen.contains(pair)
    }

    fn remember(&mut self, pair: &str) {
        if self.seen.len() >= Self::CAPACITY {
            self.seen.clear();
        }
        self.seen.insert(pair.into());
    }
}

fn decrypt(name: &str, key: &Key, value: &str) -> Option<String> {
    let mut jar = CookieJar::new();
    jar.add_original(Cookie::new(name.to_string(), value.to_string()));
    jar.private(key).get(name).map(|c| c.value().to_string())
}

fn encrypt(name: &str, key: &Key, plain: String) -> String {
    let mut jar = CookieJar::new();
    jar.private_mut(key)
        .add(Cookie::new(name.to_string(), plain));
    jar.get(name)
        .map(|c| c.value().to_string())
        .unwrap_or_default()
}

impl<S, B> Transform<S, ServiceRequest> for CookieRing
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = CookieRingService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(CookieRingService {
            service: Rc::new(service),
            ring: self.clone(),
            current: RefCell::new(CurrentCookies::new()),
        }))
    }
}

/// The service of [`CookieRing`] (one per worker).
pub struct CookieRingService<S> {
    service: Rc<S>,
    ring: CookieRing,
    current: RefCell<CurrentCookies>,
}

impl<S, B> Service<ServiceRequest> for CookieRingService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let reissued = self.ring.apply(&mut req, &mut self.current.borrow_mut());
        let service = self.service.clone();
        let ring = self.ring.clone();
        Box::pin(async move {
            let mut res = service.call(req).await?;
            if let Some(value) = reissued {
                // actix-session re-sets the cookie only when the session changed; an unchanged
                // session must still leave with its cookie under the newest key.
                let name = ring.inner.name.as_str();
                let already = res.response().cookies().any(|c| c.name() == name);
                if !already {
                    res.response_mut()
                        .add_cookie(&ring.reissued_cookie(value))
                        .map_err(actix_web::error::ErrorInternalServerError)?;
                }
            }
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        Key::from(&[b; 64])
    }

    #[test]
    fn newest_passes_older_reissued_unknown_refused() {
        let ring = CookieRing::new("id", vec![key(2), key(1)], false, None);
        let under_new = encrypt("id", &key(2), "sid-a".into());
        let under_old = encrypt("id", &key(1), "sid-b".into());
        let under_retired = encrypt("id", &key(9), "sid-c".into());
        assert_eq!(ring.judge(&under_new), Verdict::Current);
        match ring.judge(&under_old) {
            Verdict::Reissued(v) => {
                assert_eq!(decrypt("id", &key(2), &v).as_deref(), Some("sid-b"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ring.judge(&under_retired),
            Verdict::Refused("undecryptable")
        );
        // the name is bound into the encryption: a cookie of another name does not pass
        let other_name = encrypt("other", &key(2), "sid-d".into());
        assert_eq!(ring.judge(&other_name), Verdict::Refused("undecryptable"));
        // truncated, garbage, empty, oversized
        assert_eq!(
            ring.judge(&under_new[..under_new.len() - 3]),
            Verdict::Refused("undecryptable")
        );
        assert_eq!(
            ring.judge("!!!not base64!!!"),
            Verdict::Refused("undecryptable")
        );
        assert_eq!(ring.judge(""), Verdict::Refused("undecryptable"));
        assert_eq!(ring.judge(&"A".repeat(5000)), Verdict::Refused("oversized"));
    }

    #[test]
    fn header_rewrite_keeps_other_cookies() {
        let ring = CookieRing::new("id", vec![key(2), key(1)], false, None);
        let old = encrypt("id", &key(1), "sid".into());
        let enc = |v: &str| Cookie::new("id", v.to_string()).encoded().to_string();
        let new = ring
            .rewrite(
                &format!("a=1; {}; b=2", enc(&old)),
                &mut None,
                &mut CurrentCookies::new(),
            )
            .expect("changed");
        let parts: Vec<&str> = new.split("; ").collect();
        assert_eq!(parts[0], "a=1");
        assert_eq!(parts[2], "b=2");
        let v = Cookie::parse_encoded(parts[1].to_string()).expect("cookie");
        assert_eq!(decrypt("id", &key(2), v.value()).as_deref(), Some("sid"));
        assert_eq!(
            ring.rewrite("a=1; id=forged; b=2", &mut None, &mut CurrentCookies::new())
                .as_deref(),
            Some("a=1; b=2")
        );
        let current = encrypt("id", &key(2), "sid".into());
        assert_eq!(
            ring.rewrite(&enc(&current), &mut None, &mut CurrentCookies::new()),
            None
        );
        assert_eq!(
            ring.rewrite(
                &format!("id={current}"),
                &mut None,
                &mut CurrentCookies::new()
            ),
            None,
            "unencoded is accepted too"
        );
        assert_eq!(
            ring.rewrite("a=1", &mut None, &mut CurrentCookies::new()),
            None
        );
    }

    #[test]
    fn current_cookies_are_judged_once() {
        let ring = CookieRing::new("id", vec![key(2), key(1)], false, None);
        let current = encrypt("id", &key(2), "sid".into());
        let old = encrypt("id", &key(1), "sid-b".into());
        let headers = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(COOKIE, HeaderValue::from_str(value).expect("header"));
            h
        };
        let mut seen = CurrentCookies::new();
        let with_current = format!("a=1; id={current}");
        // nothing known yet; no session cookie at all is nothing to judge
        assert!(!ring.all_known_current(&headers(&with_current), &seen));
        assert!(ring.all_known_current(&headers("a=1; b=2"), &seen));
        assert_eq!(ring.rewrite(&with_current, &mut None, &mut seen), None);
        assert!(ring.all_known_current(&headers(&with_current), &seen));
        assert!(ring.all_known_current(&headers(&format!("id={current}; z=9")), &seen));
        // a re-issued or refused cookie is never remembered: judged (and counted) every time
        let mut reissued = None;
        assert!(ring
            .rewrite(&format!("id={old}"), &mut reissued, &mut seen)
            .is_some());
        assert!(reissued.is_some());
        assert!(!ring.all_known_current(&headers(&format!("id={old}")), &seen));
        assert_eq!(
            ring.rewrite("id=forged", &mut None, &mut seen).as_deref(),
            Some("")
        );
        assert!(!ring.all_known_current(&headers("id=forged"), &seen));
        // a known cookie beside an unknown one of the same name: judged
        assert!(!ring.all_known_current(&headers(&format!("id={current}; id=forged")), &seen));
        // full: forgotten all at once, then remembered again
        let mut seen = CurrentCookies::new();
        for i in 0..CurrentCookies::CAPACITY {
            seen.remember(&format!("id=x{i}"));
        }
        assert!(!ring.all_known_current(&headers(&with_current), &seen));
        assert_eq!(seen.seen.len(), CurrentCookies::CAPACITY);
        assert_eq!(ring.rewrite(&with_current, &mut None, &mut seen), None);
        assert_eq!(seen.seen.len(), 1);
        assert!(ring.all_known_current(&headers(&with_current), &seen));
    }
}
