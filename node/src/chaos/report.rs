//! What a chaos run looked like: the numbers of `summary.json` ([`Summary`], with each fault's
//! figures from [`super::fault_impact`]) and the one-page picture `report.svg` ([`render_svg`])
//! — throughput, latency and errors per second with the faults shaded across every panel (each
//! labelled with its window) and the elections marked. The SVG is written by hand (no plotting
//! crate).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::check::{count_by_kind, Violation};
use super::fault_impact::{analyze_faults, FaultImpact};
use super::faults::Fault;
use super::history::{OpKind, OpRecord, Outcome};
use super::stats::{percentile, round3};
use super::terms::{Election, TermTimeline};

/// Counts of one operation type (or of all).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    pub ok: usize,
    pub fail: usize,
    pub unknown: usize,
}

impl Counts {
    fn add(&mut self, o: Outcome) {
        self.total += 1;
        match o {
            Outcome::Ok => self.ok += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Unknown => self.unknown += 1,
        }
    }
}

/// An interval of at least 1 s in which operations were in flight but none succeeded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Window {
    pub start_ms: f64,
    pub end_ms: f64,
    pub duration_ms: f64,
    /// Operations in flight during the window.
    pub ops_attempted: usize,
}

/// Latency of successful operations (load phase), in milliseconds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// The faults' windows (`window_ms` of each entry of [`Summary::faults`]), in ms.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultWindows {
    /// How many faults.
    pub count: usize,
    pub p50: f64,
    pub max: f64,
}

/// `summary.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Summary {
    pub ops: Counts,
    /// Per operation type (`inc`, `read`, `login`, `logout`, `final_read`).
    pub per_op: BTreeMap<String, Counts>,
    pub sessions: usize,
    /// The first invocation (ms since the Unix epoch).
    pub start_ms: f64,
    /// From the first invocation to the last completion of the load phase (final reads apart).
    pub duration_s: f64,
    /// Successful load-phase operations per second.
    pub throughput_ok_per_s: f64,
    pub latency_ms: Latency,
    pub unavailability: Vec<Window>,
    pub violations: usize,
    pub violations_by_kind: BTreeMap<String, usize>,
    pub skipped_ticks: u64,
    /// Each fault of the faults file with its window, elections and long requests.
    #[serde(default)]
    pub faults: Vec<FaultImpact>,
    /// Over the faults' windows.
    #[serde(default)]
    pub fault_windows_ms: FaultWindows,
    /// Every rise of the cluster's term over the run (none: no terms file).
    #[serde(default)]
    pub elections: Option<Vec<Election>>,
}

/// Width of the slots unavailability is measured in.
const SLOT_MS: f64 = 100.0;
/// Shortest unavailability window reported.
const MIN_WINDOW_MS: f64 = 1000.0;

fn load_phase(ops: &[OpRecord]) -> impl Iterator<Item = &OpRecord> {
    ops.iter().filter(|o| o.op != OpKind::FinalRead)
}

/// Summarize a history and its verdict, with the figures of each fault (elections only with a
/// terms timeline).
pub fn summarize(
    ops: &[OpRecord],
    violations: &[Violation],
    faults: &[Fault],
    terms: Option<&TermTimeline>,
) -> Summary {
    let mut all = Counts::default();
    let mut per_op: BTreeMap<String, Counts> = OpKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), Counts::default()))
        .collect();
    for o in ops {
        all.add(o.outcome);
        per_op
            .entry(o.op.as_str().to_string())
            .or_default()
            .add(o.outcome);
    }
    let sessions = ops
        .iter()
        .map(|o| o.session.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let start = load_phase(ops)
        .map(|o| o.invoke_ms)
        .fold(f64::INFINITY, f64::min);
    let end = load_phase(ops)
        .map(|o| o.complete_ms)
        .fold(f64::NEG_INFINITY, f64::max);
    let duration_s = if end > start {
        (end - start) / 1000.0
    } else {
        0.0
    };
    let mut latencies: Vec<f64> = load_phase(ops)
        .filter(|o| o.outcome == Outcome::Ok)
        .map(OpRecord::latency_ms)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let throughput_ok_per_s = if duration_s > 0.0 {
        latencies.len() as f64 / duration_s
    } else {
        0.0
    };
    let impacts = analyze_faults(ops, faults, terms);
    let mut windows: Vec<f64> = impacts.iter().map(|f| f.window_ms).collect();
    windows.sort_by(f64::total_cmp);
    Summary {
        ops: all,
        per_op,
        sessions,
        start_ms: if start.is_finite() { start } else { 0.0 },
        duration_s: round3(duration_s),
        throughput_ok_per_s: round3(throughput_ok_per_s),
        latency_ms: Latency {
            p50: round3(percentile(&latencies, 50.0)),
            p99: round3(percentile(&latencies, 99.0)),
            max: round3(latencies.last().copied().unwrap_or(0.0)),
        },
        unavailability: unavailability(ops),
        violations: violations.len(),
        violations_by_kind: count_by_kind(violations),
        skipped_ticks: ops.iter().map(|o| o.skipped_ticks).sum(),
        fault_windows_ms: FaultWindows {
            count: impacts.len(),
            p50: percentile(&windows, 50.0),
            max: windows.last().copied().unwrap_or(0.0),
        },
        faults: impacts,
        elections: terms.map(|t| t.elections().to_vec()),
    }
}

/// Runs of at least 1 s of 100 ms slots in which some load-phase operation was in flight and
/// none completed successfully.
pub fn unavailability(ops: &[OpRecord]) -> Vec<Window> {
    let load: Vec<&OpRecord> = load_phase(ops).collect();
    let Some(t0) = load.iter().map(|o| o.invoke_ms).min_by(f64::total_cmp) else {
        return Vec::new();
    };
    let t1 = load
        .iter()
        .map(|o| o.complete_ms)
        .fold(f64::NEG_INFINITY, f64::max);
    let slot = |t: f64| ((t - t0) / SLOT_MS).floor().max(0.0) as usize;
    let n = slot(t1) + 1;
    let mut busy = vec![0i64; n + 1];
    let mut ok = vec![false; n];
    for o in &load {
        busy[slot(o.invoke_ms)] += 1;
        busy[slot(o.complete_ms) + 1] -= 1;
        if o.outcome == Outcome::Ok {
            ok[slot(o.complete_ms)] = true;
        }
    }
    let mut windows = Vec::new();
    let mut in_flight = 0i64;
    let mut run_start: Option<usize> = None;
    for i in 0..=n {
        let unavailable = if i < n {
            in_flight += busy[i];
            in_flight > 0 && !ok[i]
        } else {
            false
        };
        match (unavailable, run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(s)) => {
                let (start_ms, end_ms) = (t0 + s as f64 * SLOT_MS, t0 + i as f64 * SLOT_MS);
                if end_ms - start_ms >= MIN_WINDOW_MS {
                    windows.push(Window {
                        start_ms: round3(start_ms),
                        end_ms: round3(end_ms),
                        duration_ms: round3(end_ms - start_ms),
                        ops_attempted: load
                            .iter()
                            .filter(|o| o.invoke_ms < end_ms && o.complete_ms >= start_ms)
                            .count(),
                    });
                }
                run_start = None;
            }
            _ => {}
        }
    }
    windows
}

/// One second of the run, for the picture.
#[derive(Clone, Debug, Default)]
struct Second {
    ok: usize,
    fail: usize,
    unknown: usize,
    latencies: Vec<f64>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round axis maximum at or above `v` (1, 2, 5 × 10^k).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const PANEL_H: f64 = 170.0;
const GAP: f64 = 40.0;
const TOP: f64 = 80.0;

struct Frame {
    t0: f64,
    t1: f64,
}

impl Frame {
    fn x(&self, t_ms: f64) -> f64 {
        let span = (self.t1 - self.t0).max(1.0);
        LEFT + (t_ms - self.t0).clamp(0.0, span) / span * (WIDTH - LEFT - RIGHT)
    }
}

/// Draw a panel frame with a y axis from 0 to `max`, returning the y mapping's parameters.
fn panel(svg: &mut String, top: f64, title: &str, unit: &str, max: f64) {
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{top}" width="{w}" height="{PANEL_H}" fill="#fafafa" stroke="#999"/>"##,
        w = WIDTH - LEFT - RIGHT
    );
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="{y}" font-size="14" font-weight="bold">{}</text>"##,
        esc(title),
        y = top - 8.0
    );
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = top + PANEL_H - PANEL_H * f64::from(i) / 4.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{x2}" y2="{y:.1}" stroke="#e3e3e3"/><text x="{tx}" y="{ty:.1}" font-size="11" text-anchor="end">{}</text>"##,
            fmt_num(v),
            x2 = WIDTH - RIGHT,
            tx = LEFT - 6.0,
            ty = y + 4.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="14" y="{y}" font-size="11" transform="rotate(-90 14 {y})" text-anchor="middle">{}</text>"##,
        esc(unit),
        y = top + PANEL_H / 2.0
    );
}

fn yv(top: f64, v: f64, max: f64) -> f64 {
    top + PANEL_H - (v / max).clamp(0.0, 1.0) * PANEL_H
}

/// Render `report.svg`: the verdict as the title, then throughput (ok ops/s), latency p50/p99
/// per second and errors per second (fail and unknown stacked), faults shaded across all
/// panels, violations marked under the first panel.
pub fn render_svg(
    ops: &[OpRecord],
    faults: &[Fault],
    violations: &[Violation],
    summary: &Summary,
) -> String {
    let t0 = ops
        .iter()
        .map(|o| o.invoke_ms)
        .chain(faults.iter().map(|f| f.start_ms))
        .fold(f64::INFINITY, f64::min);
    let t1 = ops
        .iter()
        .map(|o| o.complete_ms)
        .chain(faults.iter().filter_map(|f| f.end_ms))
        .fold(f64::NEG_INFINITY, f64::max);
    let (t0, t1) = if t0.is_finite() && t1 > t0 {
        (t0, t1)
    } else {
        (0.0, 1000.0)
    };
    let frame = Frame { t0, t1 };
    let seconds = ((t1 - t0) / 1000.0).ceil().max(1.0) as usize;
    let mut per = vec![Second::default(); seconds + 1];
    for o in ops {
        let s = (((o.complete_ms - t0) / 1000.0).floor().max(0.0) as usize).min(seconds);
        let b = &mut per[s];
        match o.outcome {
            Outcome::Ok => {
                b.ok += 1;
                b.latencies.push(o.latency_ms());
            }
            Outcome::Fail => b.fail += 1,
            Outcome::Unknown => b.unknown += 1,
        }
    }
    for b in &mut per {
        b.latencies.sort_by(f64::total_cmp);
    }
    let height = TOP + 3.0 * (PANEL_H + GAP) + 40.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">"##
    );
    let _ = writeln!(svg, r##"<rect width="100%" height="100%" fill="white"/>"##);

    // Title: the verdict first.
    let (verdict, color) = if violations.is_empty() {
        ("PASS".to_string(), "#1e8e3e")
    } else {
        let kinds: Vec<String> = count_by_kind(violations)
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        (
            format!(
                "FAIL — {} violation{} ({})",
                violations.len(),
                if violations.len() == 1 { "" } else { "s" },
                kinds.join(", ")
            ),
            "#c5221f",
        )
    };
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="30" font-size="20" font-weight="bold" fill="{color}">{}</text>"##,
        esc(&format!("sessionraft chaos check: {verdict}"))
    );
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="52" font-size="13" fill="#333">{}</text>"##,
        esc(&format!(
            "{} ops ({} ok, {} fail, {} unknown) in {:.1}s · {:.1} ok ops/s · p50 {:.1} ms · p99 {:.1} ms · {} unavailability window(s) · {} skipped ticks",
            summary.ops.total,
            summary.ops.ok,
            summary.ops.fail,
            summary.ops.unknown,
            summary.duration_s,
            summary.throughput_ok_per_s,
            summary.latency_ms.p50,
            summary.latency_ms.p99,
            summary.unavailability.len(),
            summary.skipped_ticks
        ))
    );

    let tops: Vec<f64> = (0..3)
        .map(|i| TOP + f64::from(i) * (PANEL_H + GAP))
        .collect();
    let max_ok = nice_max(per.iter().map(|b| b.ok).max().unwrap_or(0) as f64);
    let p = |b: &Second, q: f64| percentile(&b.latencies, q);
    let max_lat = nice_max(per.iter().map(|b| p(b, 99.0)).fold(0.0, f64::max));
    let max_err = nice_max(per.iter().map(|b| b.fail + b.unknown).max().unwrap_or(0) as f64);
    panel(
        &mut svg,
        tops[0],
        "Throughput (ok operations per second)",
        "ops/s",
        max_ok,
    );
    panel(
        &mut svg,
        tops[1],
        "Latency of ok operations per second (p50, p99)",
        "ms",
        max_lat,
    );
    panel(
        &mut svg,
        tops[2],
        "Errors per second (fail, unknown)",
        "ops/s",
        max_err,
    );

    // Fault windows, shaded across all panels, names on top.
    let palette = ["#f4b400", "#4285f4", "#ab47bc", "#00acc1", "#ff7043"];
    for (i, f) in faults.iter().enumerate() {
        let x0 = frame.x(f.start_ms);
        let x1 = frame.x(f.end_ms.unwrap_or(t1)).max(x0 + 2.0);
        let c = palette[i % palette.len()];
        for top in &tops {
            let _ = writeln!(
                svg,
                r##"<rect x="{x0:.1}" y="{top}" width="{w:.1}" height="{PANEL_H}" fill="{c}" fill-opacity="0.18"/>"##,
                w = x1 - x0
            );
        }
        // The window of this fault (summary.faults is the faults' list, in the same order).
        let label = match summary.faults.get(i) {
            Some(impact) => format!("{} · window {:.2} s", f.label(), impact.window_ms / 1000.0),
            None => f.label(),
        };
        let _ = writeln!(
            svg,
            r##"<text x="{x:.1}" y="{y:.1}" font-size="11" fill="{c}" font-weight="bold"><title>{t}</title>{t}</text>"##,
            x = x0 + 2.0,
            y = tops[0] + 18.0 + 12.0 * (i % 4) as f64,
            t = esc(&label)
        );
    }

    let step = (WIDTH - LEFT - RIGHT) / seconds as f64;
    let xs = |s: usize| LEFT + s as f64 * step;
    // Panel 1: throughput bars.
    for (s, b) in per.iter().enumerate().take(seconds) {
        if b.ok > 0 {
            let y = yv(tops[0], b.ok as f64, max_ok);
            let _ = writeln!(
                svg,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="#34a853"/>"##,
                x = xs(s),
                w = (step - 0.5).max(0.5),
                h = tops[0] + PANEL_H - y
            );
        }
    }
    // Panel 2: p50 and p99 lines, broken where a second had no successful operation.
    for (q, color) in [(50.0, "#4285f4"), (99.0, "#ea4335")] {
        let mut runs: Vec<Vec<String>> = Vec::new();
        let mut last: Option<usize> = None;
        for (s, b) in per.iter().enumerate().take(seconds) {
            if b.latencies.is_empty() {
                continue;
            }
            if !matches!(last, Some(l) if l + 1 == s) {
                runs.push(Vec::new());
            }
            last = Some(s);
            if let Some(run) = runs.last_mut() {
                run.push(format!(
                    "{:.1},{:.1}",
                    xs(s) + step / 2.0,
                    yv(tops[1], p(b, q), max_lat)
                ));
            }
        }
        for run in runs {
            if run.len() == 1 {
                if let Some((x, y)) = run[0].split_once(',') {
                    let _ = writeln!(svg, r##"<circle cx="{x}" cy="{y}" r="2" fill="{color}"/>"##);
                }
                continue;
            }
            let _ = writeln!(
                svg,
                r##"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.5"/>"##,
                run.join(" ")
            );
        }
    }
    // Panel 3: fail and unknown, stacked.
    for (s, b) in per.iter().enumerate().take(seconds) {
        let mut base = 0.0;
        for (n, color) in [(b.fail, "#fb8c00"), (b.unknown, "#8e24aa")] {
            if n == 0 {
                continue;
            }
            let y_top = yv(tops[2], base + n as f64, max_err);
            let y_bot = yv(tops[2], base, max_err);
            let _ = writeln!(
                svg,
                r##"<rect x="{x:.1}" y="{y_top:.1}" width="{w:.1}" height="{h:.1}" fill="{color}"/>"##,
                x = xs(s),
                w = (step - 0.5).max(0.5),
                h = y_bot - y_top
            );
            base += n as f64;
        }
    }
    // Unavailability windows: a dark bar along the top of the throughput panel.
    for w in &summary.unavailability {
        let x0 = frame.x(w.start_ms);
        let x1 = frame.x(w.end_ms);
        let _ = writeln!(
            svg,
            r##"<rect x="{x0:.1}" y="{y}" width="{w:.1}" height="5" fill="#37474f"><title>unavailable for {d:.1}s</title></rect>"##,
            y = tops[0],
            w = (x1 - x0).max(1.0),
            d = w.duration_ms / 1000.0
        );
    }
    // Elections: a tick across the panels at each rise of the cluster's term, `t<term>` on top.
    for e in summary.elections.iter().flatten() {
        let x = frame.x(e.t_ms);
        let leader = e.leader.map_or_else(|| "?".to_string(), |l| l.to_string());
        let _ = writeln!(
            svg,
            r##"<g><title>term {} → {} at {:+.3}s, leader {leader}</title><line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{y1}" stroke="#6d4c41" stroke-width="1" stroke-dasharray="2 2"/><text x="{x:.1}" y="{ty}" font-size="10" fill="#6d4c41" text-anchor="middle">t{}</text></g>"##,
            e.from_term,
            e.to_term,
            (e.t_ms - t0) / 1000.0,
            e.to_term,
            y0 = tops[0] + 11.0,
            y1 = tops[2] + PANEL_H,
            ty = tops[0] + 9.0
        );
    }
    // Violations: red marks under the throughput panel at the offending operation's time.
    for v in violations {
        if let Some(o) = v.ops.last() {
            let x = frame.x(o.complete_ms);
            let y = tops[0] + PANEL_H;
            let _ = writeln!(
                svg,
                r##"<path d="M{x:.1},{y:.1} l-4,8 l8,0 z" fill="#c5221f"><title>{}</title></path>"##,
                esc(&v.message)
            );
        }
    }
    // Start of the final reads.
    if let Some(f) = ops
        .iter()
        .filter(|o| o.op == OpKind::FinalRead)
        .map(|o| o.invoke_ms)
        .min_by(f64::total_cmp)
    {
        let x = frame.x(f);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{y1}" stroke="#555" stroke-dasharray="4 3"/><text x="{tx:.1}" y="{ty}" font-size="11" fill="#555">final reads</text>"##,
            y0 = tops[0],
            y1 = tops[2] + PANEL_H,
            tx = x + 3.0,
            ty = tops[2] + PANEL_H - 4.0
        );
    }
    // Time axis (seconds since the start) under each panel.
    let tick_every = nice_max(seconds as f64 / 12.0).max(1.0) as usize;
    for top in &tops {
        for s in (0..=seconds).step_by(tick_every) {
            let _ = writeln!(
                svg,
                r##"<text x="{x:.1}" y="{y}" font-size="10" text-anchor="middle" fill="#555">{s}s</text>"##,
                x = xs(s),
                y = top + PANEL_H + 14.0
            );
        }
    }
    // Legend.
    let lx = WIDTH - RIGHT + 12.0;
    let legend = [
        (tops[0] + 20.0, "#34a853", "ok ops/s"),
        (tops[0] + 40.0, "#c5221f", "violation"),
        (tops[0] + 60.0, "#37474f", "unavailable"),
        (tops[1] + 20.0, "#4285f4", "p50"),
        (tops[1] + 40.0, "#ea4335", "p99"),
        (tops[2] + 20.0, "#fb8c00", "fail"),
        (tops[2] + 40.0, "#8e24aa", "unknown"),
    ];
    for (y, c, label) in legend {
        let _ = writeln!(
            svg,
            r##"<rect x="{lx}" y="{ry}" width="12" height="12" fill="{c}"/><text x="{tx}" y="{y}" font-size="12">{label}</text>"##,
            ry = y - 10.0,
            tx = lx + 18.0
        );
    }
    if !faults.is_empty() {
        let _ = writeln!(
            svg,
            r##"<text x="{lx}" y="{y}" font-size="11" fill="#555">shaded: faults</text>"##,
            y = tops[0] + 80.0
        );
    }
    if summary.elections.as_ref().is_some_and(|e| !e.is_empty()) {
        let _ = writeln!(
            svg,
            r##"<text x="{lx}" y="{y}" font-size="11" fill="#6d4c41">t5: term 5 elected</text>"##,
            y = tops[0] + 96.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
