//! When a batch asks the mount's authorisation backend: after the message passed every local
//! check (clientId, channel grammar, limits, tokens, allow-lists), before it changes anything.
//! The exchange itself is the transport's (it implements `policy::hook::AskBackend`); the
//! rules of the question, the answer and the cache are `policy::hook`.

use super::node::{Node, Peer};
use crate::bayeux::json::{self, Value};
use crate::config::HookFailure;
use crate::metrics;
use crate::policy::hook::{AskBackend, Asked, Question, Verdict};
use std::rc::Rc;
use std::time::Instant;

/// How long a client refused at handshake by the hook is advised to wait before trying again.
pub const HOOK_RETRY_MS: u64 = 5_000;

impl Node {
    /// Sets the client of `mount`'s authorisation backend.
    pub fn set_backend(&self, mount: usize, backend: Rc<dyn AskBackend>) {
        let mut backends = self.backends.borrow_mut();
        if backends.len() <= mount {
            backends.resize_with(mount + 1, || None);
        }
        backends[mount] = Some(backend);
    }

    /// Whether `mount`'s hook is asked about `asked`.
    pub(super) fn hooked(&self, mount: usize, asked: Asked) -> bool {
        self.settings
            .policy(mount)
            .hook
            .as_ref()
            .is_some_and(|h| match asked {
                Asked::Handshake => h.config.handshake,
                Asked::Subscribe => true,
                Asked::Publish => h.config.publish,
            })
    }

    /// Asks `mount`'s backend about `msg` when its hook covers `asked`: None lets the message
    /// through, Some is the error to refuse it with. `channel` is the message's channel (a
    /// meta channel, or the publish's).
    pub(super) async fn hook_refuses(
        &self,
        mount: usize,
        asked: Asked,
        channel: &str,
        msg: Value<'_, '_>,
        peer: &Peer,
    ) -> Option<String> {
        if !self.hooked(mount, asked) {
            return None;
        }
        // Boxed: the asking future is large, and a request task on a mount without a hook
        // (every live socket's task) need not carry it in its state.
        Box::pin(self.ask_hook(mount, asked, channel, msg, peer)).await
    }

    /// [`Node::hook_refuses`] once the hook covers the message: the cache, then the backend.
    async fn ask_hook(
        &self,
        mount: usize,
        asked: Asked,
        channel: &str,
        msg: Value<'_, '_>,
        peer: &Peer,
    ) -> Option<String> {
        let policy = self.settings.policy(mount);
        let hook = policy.hook.as_ref()?;
        let stats = &self.my_stats().mounts[mount];
        let subscription = json::field(msg, "subscription");
        let question = Question::new(
            &self.settings.mounts[mount],
            channel,
            subscription.filter(|_| asked == Asked::Subscribe),
            json::field(msg, "ext"),
            peer.forwarded.as_deref().unwrap_or_default(),
            peer.ip,
        );
        let now = Instant::now();
        if hook.cache.allowed(question.key(), now) {
            metrics::add(&stats.hook_cached, 1);
            return None;
        }
        // What a refusal names, as Faye's errors do: the subscription or the channel.
        let subject = match asked {
            Asked::Handshake => String::new(),
            Asked::Subscribe => subscription.map(json::js_string).unwrap_or_default(),
            Asked::Publish => channel.to_owned(),
        };
        let backend = self.backends.borrow().get(mount).cloned().flatten()?;
        let body = question.body(json::str_field(msg, "clientId"));
        let decided = backend.ask(body, format!("403:{subject}:Forbidden")).await;
        stats.hook_latency.observe(now.elapsed());
        match decided {
            Ok(Verdict::Allow) => {
                metrics::add(&stats.hook_allowed, 1);
                hook.cache.allow(question.key(), Instant::now());
                None
            }
            Ok(Verdict::Deny(error)) => {
                metrics::add(&stats.hook_denied, 1);
                Some(error)
            }
            Err(failure) => {
                metrics::add(&stats.hook_failures, 1);
                match hook.config.failure {
                    HookFailure::Allow => None,
                    HookFailure::Deny => Some(format!(
                        "503:{subject}:Authorisation backend unavailable ({})",
                        failure.reason()
                    )),
                }
            }
        }
    }
}
