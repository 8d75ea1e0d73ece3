//! Nodes for the shard layer's unit tests: real settings read from command-line arguments, one
//! real mesh between the workers, all on a monoio runtime on the test's own thread.

use super::mesh::Mesh;
use super::{Node, Peer, Via};
use crate::config::{Cli, Config, Driver};
use crate::lifecycle::Lifecycle;
use crate::metrics::Stats;
use crate::settings::Settings;
use clap::Parser;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// One node per worker of a process started with `bayou <args>`, sharing a mesh.
pub(super) fn nodes(workers: usize, args: &[&str]) -> Vec<Rc<Node>> {
    let argv = std::iter::once("bayou").chain(args.iter().copied());
    let config = Config::from_cli(Cli::parse_from(argv)).expect("the test's configuration");
    let settings = Arc::new(Settings::new(&config).expect("settings"));
    let mesh = Arc::new(Mesh::new(workers));
    let lifecycle = Arc::new(Lifecycle::new(Duration::from_secs(4)));
    let stats = Arc::new(Stats::new(&settings.mounts, workers));
    (0..workers)
        .map(|me| {
            let (settings, mesh) = (settings.clone(), mesh.clone());
            Node::new(me, settings, mesh, lifecycle.clone(), stats.clone())
        })
        .collect()
}

/// Runs `f` to completion on an epoll runtime on this thread.
pub(super) fn run<F: Future>(f: impl FnOnce() -> F) -> F::Output {
    crate::shard::worker::block_on(Driver::Epoll, |_| f()).expect("a monoio runtime")
}

/// Processes a JSON batch on `node` as an HTTP request from nobody in particular; the reply
/// array parsed.
pub(super) async fn post(node: &Rc<Node>, body: &str) -> serde_json::Value {
    let out = node.process(0, body.as_bytes().to_vec(), Via::Http, Peer::default());
    let out = out.await.expect("the body is processed");
    serde_json::from_slice(&out).expect("a JSON reply")
}

/// A new session on `node` (its worker's), by handshake.
pub(super) async fn handshake(node: &Rc<Node>) -> String {
    let body = r#"[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]"#;
    let reply = post(node, body).await;
    reply[0]["clientId"]
        .as_str()
        .expect("a clientId")
        .to_owned()
}
