//! What a run tells its operator: a progress bar with keys/s and an ETA on a terminal (plain
//! lines every few seconds otherwise), a line per key that could not be copied, and the summary.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// At most this many keys are named one by one; the rest are counted.
const NAMED_FAILURES: u64 = 100;
/// How often a plain progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The counts of a run, shared by its workers.
#[derive(Default)]
pub struct Tally {
    /// Keys `SCAN` returned (matching or not).
    pub scanned: AtomicU64,
    /// Keys a pattern matched.
    pub matched: AtomicU64,
    /// Written to the destination: absent there before.
    pub created: AtomicU64,
    /// Written to the destination over an older copy (or an older lifetime).
    pub updated: AtomicU64,
    /// The same value and lifetime on both sides.
    pub unchanged: AtomicU64,
    /// Kept on the destination: its copy is newer (or it changed there during the copy).
    pub newer_on_destination: AtomicU64,
    /// Gone from the source before it was read, or its lifetime over before the write.
    pub expired: AtomicU64,
    /// Not copied: another type, too large, refused.
    pub failed: AtomicU64,
    /// Deleted from the destination: gone from the source (`--delete-missing`).
    pub deleted: AtomicU64,
}

/// The summary of a run (`--json` prints it as is).
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub source: String,
    pub destination: String,
    pub patterns: String,
    pub scanned: u64,
    pub matched: u64,
    /// created + updated.
    pub copied: u64,
    pub created: u64,
    pub updated: u64,
    /// unchanged + newer_on_destination.
    pub skipped: u64,
    pub unchanged: u64,
    pub newer_on_destination: u64,
    pub expired: u64,
    pub failed: u64,
    /// Deleted from the destination (`--delete-missing`).
    pub deleted: u64,
    pub seconds: f64,
    pub keys_per_second: f64,
}

impl Tally {
    /// The summary at the end of a run that took `elapsed`.
    pub fn summary(
        &self,
        elapsed: Duration,
        source: &str,
        destination: &str,
        patterns: &str,
    ) -> Summary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (created, updated) = (get(&self.created), get(&self.updated));
        let (unchanged, newer) = (get(&self.unchanged), get(&self.newer_on_destination));
        let matched = get(&self.matched);
        let seconds = elapsed.as_secs_f64();
        Summary {
            source: source.to_string(),
            destination: destination.to_string(),
            patterns: patterns.to_string(),
            scanned: get(&self.scanned),
            matched,
            copied: created + updated,
            created,
            updated,
            skipped: unchanged + newer,
            unchanged,
            newer_on_destination: newer,
            expired: get(&self.expired),
            failed: get(&self.failed),
            deleted: get(&self.deleted),
            seconds,
            keys_per_second: if seconds > 0.0 {
                matched as f64 / seconds
            } else {
                0.0
            },
        }
    }

    fn counts(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "copied {}, skipped {}, expired {}, failed {}",
            get(&self.created) + get(&self.updated),
            get(&self.unchanged) + get(&self.newer_on_destination),
            get(&self.expired),
            get(&self.failed)
        )
    }
}

impl Summary {
    /// The summary for people.
    pub fn human(&self, verb: &str) -> String {
        format!(
            "{verb} {} -> {}: {} keys matched ({}) of {} scanned in {:.1} s ({:.0} keys/s): \
             copied {} ({} new, {} updated), skipped {} ({} unchanged, {} newer on the \
             destination), expired {}, failed {}, deleted {}",
            self.source,
            self.destination,
            self.matched,
            self.patterns,
            self.scanned,
            self.seconds,
            self.keys_per_second,
            self.copied,
            self.created,
            self.updated,
            self.skipped,
            self.unchanged,
            self.newer_on_destination,
            self.expired,
            self.failed,
            self.deleted
        )
    }
}

/// The progress display of one run.
pub struct Progress {
    label: &'static str,
    bar: Option<ProgressBar>,
    total: u64,
    started: Instant,
    last_line: Mutex<Instant>,
    named: AtomicU64,
}

impl Progress {
    /// A bar on a terminal (stderr), plain lines otherwise; `total`: the keys the source holds
    /// (its `DBSIZE`), which `SCAN` goes through.
    pub fn new(label: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} keys scanned, {per_sec}, ETA {eta} · {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label);
            bar
        });
        Self {
            label,
            bar,
            total,
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
            named: AtomicU64::new(0),
        }
    }

    /// Shows the counts now (the bar) or every few seconds (plain lines).
    pub fn update(&self, tally: &Tally) {
        let scanned = tally.scanned.load(Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            if scanned > bar.length().unwrap_or(0) {
                // keys added since DBSIZE was read
                bar.set_length(scanned);
            }
            bar.set_position(scanned);
            bar.set_message(tally.counts());
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < PLAIN_EVERY {
            return;
        }
        *last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64();
        let rate = scanned as f64 / secs.max(1e-3);
        let eta = if rate > 0.0 && self.total > scanned {
            format!("{:.0} s", (self.total - scanned) as f64 / rate)
        } else {
            "-".to_string()
        };
        eprintln!(
            "{}: {scanned}/{} keys scanned, {rate:.0} keys/s, ETA {eta}: {}",
            self.label,
            self.total.max(scanned),
            tally.counts()
        );
    }

    /// A key that could not be copied, named (the first 100 of them; the rest are counted).
    pub fn failed(&self, key: &[u8], why: &str) {
        let n = self.named.fetch_add(1, Ordering::Relaxed);
        let line = match n {
            n if n < NAMED_FAILURES => format!("{}: key {}: {why}", self.label, show_key(key)),
            NAMED_FAILURES => format!(
                "{}: more keys could not be copied; they are counted in the summary",
                self.label
            ),
            _ => return,
        };
        self.println(&line);
    }

    /// A line above the bar (or on stderr).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A key for a message: quoted, bytes outside printable ASCII escaped, cut at 100 characters.
pub fn show_key(key: &[u8]) -> String {
    let mut s: String = key
        .iter()
        .take(100)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if key.len() > 100 {
        s.push('…');
    }
    format!("\"{s}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_shown_escaped_and_cut() {
        assert_eq!(show_key(b"sess:a\"b\x01"), r#""sess:a\"b\x01""#);
        assert_eq!(show_key(&[b'x'; 150]).chars().count(), 103);
    }

    #[test]
    fn the_summary_adds_up() {
        let t = Tally::default();
        t.created.store(3, Ordering::Relaxed);
        t.updated.store(2, Ordering::Relaxed);
        t.unchanged.store(4, Ordering::Relaxed);
        t.newer_on_destination.store(1, Ordering::Relaxed);
        t.matched.store(12, Ordering::Relaxed);
        let s = t.summary(Duration::from_secs(2), "a", "b", "sess:*");
        assert_eq!((s.copied, s.skipped, s.keys_per_second), (5, 5, 6.0));
        assert!(s
            .human("import")
            .contains("copied 5 (3 new, 2 updated), skipped 5"));
    }
}
