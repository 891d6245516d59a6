//! The faults file written by `scripts/chaos.sh` (or a test) and read by `sessionraft check`:
//! one JSON line per fault window, written when the window closes.
//!
//! ```json
//! {"name":"partition-leader","node":2,"start_ms":1718000003123,"end_ms":1718000008456}
//! ```
//!
//! Times are milliseconds since the Unix epoch, on the same wall clock as the history.

use serde::{Deserialize, Serialize};

/// A fault injected during the run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Fault {
    pub name: String,
    pub start_ms: f64,
    /// Absent while the fault was still on when the file was written.
    #[serde(default)]
    pub end_ms: Option<f64>,
    #[serde(default)]
    pub node: Option<serde_json::Value>,
}

impl Fault {
    /// `name (node N)`, or just the name when no node is recorded.
    pub fn label(&self) -> String {
        label(&self.name, self.node.as_ref())
    }
}

/// A fault's name with its node: `pause (node 2)`, `name (what)` for a node given as a string,
/// the bare name when there is none.
pub fn label(name: &str, node: Option<&serde_json::Value>) -> String {
    match node {
        Some(serde_json::Value::Null) | None => name.to_string(),
        Some(serde_json::Value::String(n)) => format!("{name} ({n})"),
        Some(n) => format!("{name} (node {n})"),
    }
}

/// Read a faults file (JSON lines); blank lines are skipped.
///
/// # Errors
/// The file cannot be read or a line is not a fault.
pub fn read_faults(path: &std::path::Path) -> Result<Vec<Fault>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{}:{}: not a fault record: {e}", path.display(), i + 1))
        })
        .collect()
}
