//! The peer transport: the wire format ([`wire`]), request MACs ([`auth`]), outgoing calls and
//! the openraft network ([`network`]), and the meaning of incoming requests ([`inbound`]). The
//! HTTP routes that carry them are `sessionraft-web`'s `raft_routes`.

pub mod auth;
pub mod inbound;
pub mod network;
pub mod wire;
