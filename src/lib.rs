//! Bayou: a drop-in, wire-compatible replacement for the Faye pub/sub server (Bayeux protocol),
//! thread-per-core on monoio.
//!
//! # Layout
//!
//! Each layer imports only the layers below it:
//!
//! ```text
//! main.rs  -> server      wiring: listeners, worker threads, start-up and failure
//!             admin       /healthz and /readyz on their own listener and thread
//!             backplane/  other Bayou processes (Redis pub/sub): the thread beside the
//!                         workers, reached through shard::Cluster
//!             transport/  sockets: HTTP connection loop, Bayeux over HTTP, WebSocket (and
//!                         the per-worker table where idle ones park without a task),
//!                         EventSource, the static client files
//!             shard/      the only layer that knows other cores exist: owner(), the mesh,
//!                         the per-worker router that drives a batch, worker runtimes
//!             engine/     per-worker state: sessions, subscriptions, delivery, deadlines
//!             policy/     per-mount rules: limits, publish secrets, subscribe tokens, origins
//!             bayeux/ http/ websocket/   sans-IO codecs and protocol rules (no monoio)
//! config      the typed configuration, read by every layer
//! ```

pub mod admin;
pub mod backplane;
pub mod bayeux;
pub mod config;
pub mod console;
pub mod engine;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod policy;
pub mod server;
pub mod shard;
pub mod transport;
pub mod websocket;
