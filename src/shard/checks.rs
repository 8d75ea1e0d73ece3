//! Each meta channel's checks before anything changes: a handshake's admission and its new
//! session, a subscription's limits and tokens, and a publish's validation and authorisation
//! (the authorisation hook, `hook`, runs after these).

use super::batch::LazyAck;
use super::mesh::Class;
use super::node::{Node, Peer};
use super::owner;
use crate::bayeux::json::Reply;
use crate::bayeux::{self, Kind, handshake, publish, subscribe};
use crate::metrics;
use crate::policy::Credentials;
use bytes::Bytes;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

impl Node {
    /// A handshake's checks: validated, then admitted by the per-address limits. Continue
    /// holds the reply so far, for [`Node::open_session`]; Break the refusal to send.
    pub(super) fn admit_handshake(
        &self,
        mount: usize,
        msg: bayeux::json::Value,
        peer: &Peer,
    ) -> ControlFlow<Reply, Reply> {
        let mut r = handshake::check(msg);
        if !r.successful {
            return ControlFlow::Break(r);
        }
        let policy = self.settings.policy(mount);
        let now = Instant::now();
        if let Some(Err(refused)) = peer.ip.map(|ip| policy.limiter.admit(ip, now)) {
            handshake::refuse(&mut r, refused.error(), refused.backoff_ms());
            metrics::add(&self.my_stats().mounts[mount].handshakes_refused, 1);
            return ControlFlow::Break(r);
        }
        ControlFlow::Continue(r)
    }

    /// An admitted handshake's new session, and the reply that names it.
    pub(super) fn open_session(
        &self,
        mount: usize,
        mut r: Reply,
        peer: &Peer,
        ack: &LazyAck,
    ) -> Reply {
        let now = Instant::now();
        let policy = self.settings.policy(mount);
        let counted = peer.ip.filter(|_| policy.limiter.counts_sessions());
        let cid = self.engine.borrow_mut().handshake_from(mount, now, counted);
        if let Some(cluster) = self.cluster.get() {
            // The reply waits until the directory names this process its owner.
            cluster.opened(mount, &cid, ack.get());
        }
        handshake::accept(&mut r, &cid, self.advice[mount].handshake());
        metrics::add(&self.my_stats().mounts[mount].handshakes, 1);
        r
    }

    /// Validates a (un)subscribe with the mount's limits and subscribe tokens.
    pub(super) fn check_subscription(
        &self,
        mount: usize,
        msg: bayeux::json::Value,
    ) -> (Reply, Vec<String>) {
        let policy = self.settings.policy(mount);
        let limits = &policy.limits;
        let engine = self.engine.borrow();
        if bayeux::classify(msg) == Kind::Unsubscribe {
            return subscribe::check(msg, |c| engine.exists(mount, c));
        }
        let held = bayeux::json::str_field(msg, "clientId")
            .map_or(0, |c| engine.subscription_count(mount, c));
        let token = ext_str(msg, "token");
        subscribe::check_with(
            msg,
            |c| engine.exists(mount, c),
            |name, i| {
                if name.len() > limits.max_channel {
                    return Err(CHANNEL_TOO_LONG.to_owned());
                }
                if held + i >= limits.max_subscriptions {
                    return Err(format!("403:{name}:Too many subscriptions"));
                }
                policy
                    .auth
                    .subscribe(name, token)
                    .map_err(|d| d.to_string())
            },
        )
    }

    /// Whether a publish carries the mount's ingest secret (in `ext.password` or as a bearer
    /// token): such a publish never asks the authorisation hook.
    pub(super) fn has_ingest_secret(
        &self,
        mount: usize,
        msg: bayeux::json::Value,
        peer: &Peer,
    ) -> bool {
        let auth = &self.settings.policy(mount).auth;
        peer.bearer
            || (auth.publish_secret.as_ref())
                .zip(ext_str(msg, "password"))
                .is_some_and(|(secret, given)| secret.matches(given))
    }

    /// A publish: validated and authorised; when accepted, its channel and the delivered form
    /// (credentials stripped) to route.
    pub(super) fn check_publish<'i>(
        &self,
        mount: usize,
        msg: bayeux::json::Value<'_, 'i>,
        peer: &Peer,
    ) -> (Reply, Option<(&'i str, Bytes)>) {
        let stats = &self.my_stats().mounts[mount];
        let policy = self.settings.policy(mount);
        let (mut r, name) = match publish::check(msg) {
            Ok(ok) => ok,
            Err(r) => {
                metrics::add(&stats.publishes_refused, 1);
                return (r, None);
            }
        };
        let cred = Credentials {
            password: ext_str(msg, "password"),
            bearer: peer.bearer,
            from_client: bayeux::json::truthy_field(msg, "clientId").is_some(),
        };
        let verdict = if name.len() > policy.limits.max_channel {
            Err(CHANNEL_TOO_LONG.to_owned())
        } else {
            policy.auth.publish(name, cred).map_err(|d| d.to_string())
        };
        match verdict {
            Ok(()) => {
                let delivered = publish::delivered(msg, policy.strip());
                (r, Some((name, Bytes::from(delivered))))
            }
            Err(e) => {
                r.fail(e);
                r.settle();
                metrics::add(&stats.publishes_refused, 1);
                (r, None)
            }
        }
    }

    /// Waits until a publish to `channel` may be sent: room towards its owner, or, when this
    /// worker owns it, no backed-up deliveries.
    pub(super) async fn room_to_publish(&self, channel: &str) {
        if let Some(cluster) = self.cluster.get() {
            // Shared through the cluster: its queue is the one to wait for. Only under a
            // sustained overload; it refuses no more once Redis is lost.
            while cluster.backed_up() {
                // Boxed: a request task that never waits here (all but an overloaded one)
                // need not carry a timer in its state, which every live socket's task holds.
                Box::pin(monoio::time::sleep(Duration::from_millis(1))).await;
            }
        }
        match owner(channel, self.workers()) {
            to if to == self.me => self.uncongested().await,
            to => self.room(to, Class::Route).await,
        }
    }
}

/// The error of a channel name over the mount's `max_channel`.
pub(super) const CHANNEL_TOO_LONG: &str = "405::Channel name too long";

/// A string field of the message's `ext`.
pub(super) fn ext_str<'i>(msg: bayeux::json::Value<'_, 'i>, key: &str) -> Option<&'i str> {
    bayeux::json::field(msg, "ext").and_then(|ext| bayeux::json::str_field(ext, key))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{handshake, nodes, post, run};
    use super::*;
    use crate::bayeux::json::parse_batch;

    /// Runs `f` on the first message of the JSON batch `body`, parsed as the router parses.
    fn with_msg<R>(body: &str, f: impl FnOnce(bayeux::json::Value) -> R) -> R {
        let mut bytes = body.as_bytes().to_vec();
        let msgs = parse_batch(&mut bytes).expect("a batch");
        f(msgs.iter().next().expect("a message"))
    }

    #[test]
    fn a_publish_is_checked_for_its_channel_and_secret_and_delivered_without_it() {
        let nodes = nodes(1, &["--publish-secret", "s3cret", "--max-channel", "16"]);
        let node = &nodes[0];
        let (bearer, nobody) = (
            Peer {
                bearer: true,
                ..Peer::default()
            },
            Peer::default(),
        );
        let check = |body: &str, peer: &Peer| {
            with_msg(body, |m| {
                let (r, accepted) = node.check_publish(0, m, peer);
                (r.successful, accepted.map(|(c, b)| (c.to_owned(), b)))
            })
        };
        let (ok, accepted) = check(
            r#"[{"channel":"/a","data":1,"ext":{"password":"s3cret"}}]"#,
            &nobody,
        );
        let (channel, delivered) = accepted.expect("accepted");
        assert!(ok && channel == "/a");
        assert!(
            !String::from_utf8_lossy(&delivered).contains("s3cret"),
            "the secret is stripped"
        );
        assert!(check(r#"[{"channel":"/a","data":1}]"#, &bearer).0);
        assert!(
            !check(r#"[{"channel":"/a","data":1}]"#, &nobody).0,
            "no secret"
        );
        let long = r#"[{"channel":"/a/very/long/channel","data":1}]"#;
        assert!(!check(long, &bearer).0, "over max_channel");
        assert!(
            !check(r#"[{"channel":"/a/*","data":1}]"#, &bearer).0,
            "a pattern"
        );
    }

    #[test]
    fn the_ingest_secret_is_a_bearer_or_the_password() {
        let nodes = nodes(1, &["--publish-secret", "s3cret"]);
        let secret = |body: &str, bearer: bool| {
            let peer = Peer {
                bearer,
                ..Peer::default()
            };
            with_msg(body, |m| nodes[0].has_ingest_secret(0, m, &peer))
        };
        assert!(secret(r#"[{"channel":"/a","data":1}]"#, true));
        assert!(secret(
            r#"[{"channel":"/a","data":1,"ext":{"password":"s3cret"}}]"#,
            false
        ));
        assert!(!secret(
            r#"[{"channel":"/a","data":1,"ext":{"password":"guess"}}]"#,
            false
        ));
        assert!(!secret(r#"[{"channel":"/a","data":1}]"#, false));
    }

    #[test]
    fn handshakes_past_an_addresss_burst_are_refused_with_a_backoff() {
        let nodes = nodes(1, &["--handshake-burst", "2", "--handshake-rate", "0.001"]);
        let peer = Peer {
            ip: Some("192.0.2.7".parse().unwrap()),
            ..Peer::default()
        };
        let body = r#"[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]"#;
        let admitted: Vec<bool> = (0..3)
            .map(|_| {
                with_msg(body, |m| {
                    nodes[0].admit_handshake(0, m, &peer).is_continue()
                })
            })
            .collect();
        assert_eq!(admitted, [true, true, false]);
        // Another address is not held back.
        let other = Peer {
            ip: Some("192.0.2.8".parse().unwrap()),
            ..Peer::default()
        };
        assert!(with_msg(body, |m| nodes[0]
            .admit_handshake(0, m, &other)
            .is_continue()));
    }

    #[test]
    fn a_client_may_hold_only_so_many_subscriptions() {
        run(|| async {
            let nodes = nodes(1, &["--max-subscriptions", "1"]);
            let cid = handshake(&nodes[0]).await;
            let body = format!(
                r#"[{{"channel":"/meta/subscribe","clientId":"{cid}","subscription":["/a","/b"]}}]"#
            );
            let reply = post(&nodes[0], &body).await;
            assert_eq!(reply[0]["successful"], false, "{reply}");
            assert_eq!(reply[0]["error"], "403:/b:Too many subscriptions");
        });
    }
}
