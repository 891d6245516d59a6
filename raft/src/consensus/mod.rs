//! The runtime that drives openraft on one node: start and stop ([`runtime`]), the supervised
//! actors its long-lived components run as ([`actors`]), propose and
//! read ([`cluster`]), group commit ([`batcher`]), touches ([`touch`]), the purge
//! ([`purger`]), elections ([`failover`]) with pre-vote ([`prevote`]), the lease ([`lease`]), leader contact
//! ([`leader_contact`]), the freshness of token reads ([`freshness`]), membership changes ([`membership`]), whether the peers' names resolve
//! ([`peer_names`]), what it measures
//! ([`instruments`]) and its `[raft]` settings in `cluster.toml` ([`settings`]).

pub mod actors;
pub mod batcher;
pub mod cluster;
pub mod cluster_version;
pub mod failover;
pub mod freshness;
pub mod instruments;
pub mod leader_contact;
pub mod lease;
pub mod membership;
pub mod peer_names;
pub mod prevote;
pub mod purger;
pub mod runtime;
pub mod settings;
pub mod touch;
