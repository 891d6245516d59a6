//! The tests that change what the whole machine shares, or that bound a failover window: network
//! namespaces and their bridge (`hosts`, `chaos` across hosts), iptables rules (`partition`,
//! `chaos`), tmpfs mounts (`chaos`), and three clusters' worth of load (`upgrade`). They take
//! turns ([`TURN`]) whoever runs them; `scripts/test.sh` also runs them after the rest, one
//! thread (`cargo test --test it solo:: -- --test-threads=1`), so no other test's cluster shares
//! the two cores while a window is measured.

mod chaos;
mod hosts;
mod partition;
mod upgrade;

/// One solo test at a time: all integration tests are one process, on parallel threads.
pub static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
