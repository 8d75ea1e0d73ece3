//! Bayou: a drop-in, wire-compatible replacement for the Faye pub/sub server (Bayeux protocol),
//! thread-per-core on monoio.
//!
//! # Layout
//!
//! Each layer imports only the layers below it:
//!
//! ```text
//! main.rs  -> server      wiring: listeners, worker threads, start-up and failure
//!             admin       /healthz, /readyz, /metrics on their own listener and threads
//!             console/    the operator's console there: status page, /api/stats,
//!                         /api/presence (asks every worker through the mesh)
//!             backplane/  other Bayou processes (Redis streams): the thread beside the
//!                         workers, reached through shard::Cluster
//!             transport/  sockets: HTTP connection loop, Bayeux over HTTP, WebSocket (and
//!                         the per-worker table where idle ones park without a task),
//!                         EventSource, the auth hook's client (static_files, metrics and
//!                         lifecycle are leaves several layers use)
//!             shard/      the only layer that knows other cores exist: owner(), the mesh,
//!                         the per-worker router that drives a batch (and asks the auth
//!                         hook through policy::hook::AskBackend), worker runtimes
//!             settings    what workers read at run time (config, loaded files, policies)
//!             engine/     per-worker state: sessions, subscriptions, delivery, deadlines
//!             policy/     per-mount rules: limits, publish secrets, subscribe tokens, origins,
//!                         the auth hook's question, answer, cache and AskBackend trait
//!             config/     the typed configuration: read and validated, imports no layer above
//!             bayeux/ http/ websocket/   sans-IO codecs (the bayou-codec crate, codec/;
//!                         no monoio, no tokio), re-exported here
//! ```

// The codecs live in their own crate (codec/), which has no runtime: re-exported under the
// names the layers above use.
pub use bayou_codec::{bayeux, http, websocket};

pub mod admin;
pub mod backplane;
pub mod config;
pub mod console;
pub mod engine;
pub mod lifecycle;
pub mod metrics;
pub mod policy;
pub mod server;
pub mod settings;
pub mod shard;
pub mod static_files;
pub mod transport;
