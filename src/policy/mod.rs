//! What each mount allows, sans-IO: who may publish and subscribe where, which credentials are
//! removed from deliveries, which origins may connect, and how many handshakes and sessions one
//! address may have. Built once from the configuration; consulted by the shard layer as it runs
//! a batch and by the transport as it accepts a request.

pub mod hook;
pub mod limiter;
pub mod token;

use crate::bayeux::ChannelSet;
use crate::bayeux::Code;
pub use crate::bayeux::publish::Strip;
use crate::config::{AuthMode, HookConfig, LimitsConfig, MountConfig, Secret};
pub use limiter::{Limiter, Refused};
use std::fmt;
use std::time::Duration;
pub use token::{TokenRefusal, Verifier};

/// The `ext` keys that carry credentials: removed from every delivered message.
pub const CREDENTIAL_KEYS: [&str; 2] = ["password", "token"];

/// The same with an authorisation hook: also `ext.authToken`, where Faye's auth recipes put
/// the client's token.
pub const HOOK_CREDENTIAL_KEYS: [&str; 3] = ["password", "token", "authToken"];

/// A mount's backend authorisation hook: its settings and the allow decisions it made lately.
pub struct Hook {
    pub config: HookConfig,
    pub cache: hook::Cache,
}

/// Why a mount's rules refuse a publish or a subscribe. Its `Display` is the reply's
/// Faye-style error (`code:args:message`), which is all a client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// A publish without the ingest secret, on a mount that has one, from no client (or from
    /// a client where clients may not publish).
    NoIngestSecret,
    /// A client may not publish to this channel (`auth.client_publish`).
    ChannelForbidden(String),
    /// A subscribe to a protected channel without a token that covers it.
    Token {
        channel: String,
        refusal: TokenRefusal,
    },
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::NoIngestSecret => f.write_str(
                "403::Publishing needs the ingest secret (ext.password or Authorization: Bearer)",
            ),
            Denied::ChannelForbidden(channel) => {
                f.write_str(&Code::ChannelForbidden.with(&[channel]))
            }
            Denied::Token { channel, refusal } => write!(f, "403:{channel}:{}", refusal.text()),
        }
    }
}

impl std::error::Error for Denied {}

/// A mount's authentication and authorisation rules.
#[derive(Default)]
pub struct Auth {
    /// Exact Node Faye behaviour: no checks, nothing stripped.
    pub open: bool,
    pub publish_secret: Option<Secret>,
    pub verifier: Option<Verifier>,
    pub protected: Vec<ChannelSet>,
    /// Where clients (messages with a clientId, without the secret) may publish; None: anywhere
    /// unless a publish secret is set, then nowhere.
    pub client_publish: Option<Vec<ChannelSet>>,
    /// Keep a publisher's `advice` in what subscribers receive.
    pub allow_advice: bool,
    /// Origins allowed on WebSocket upgrades and CORS requests; empty: any.
    pub allowed_origins: Vec<String>,
}

/// What a publish presents to be let through.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// `ext.password` of the message.
    pub password: Option<&'a str>,
    /// The request carried `Authorization: Bearer <publish secret>`.
    pub bearer: bool,
    /// The message names a clientId.
    pub from_client: bool,
}

impl Auth {
    /// Whether a request's `Authorization` header carries the publish secret.
    pub fn bearer_ok(&self, authorization: Option<&str>) -> bool {
        let (Some(secret), Some(value)) = (&self.publish_secret, authorization) else {
            return false;
        };
        let mut parts = value.splitn(2, ' ');
        let scheme = parts.next().unwrap_or_default();
        let token = parts.next().unwrap_or_default().trim();
        scheme.eq_ignore_ascii_case("bearer") && secret.matches(token)
    }

    /// May this publish to `channel` go out? The error is the reply's, Faye-style.
    pub fn publish(&self, channel: &str, cred: Credentials<'_>) -> Result<(), Denied> {
        if self.open {
            return Ok(());
        }
        let secret_ok = match &self.publish_secret {
            None => return self.client_rule(channel, cred, true),
            Some(s) => cred.bearer || cred.password.is_some_and(|p| s.matches(p)),
        };
        if secret_ok {
            return Ok(());
        }
        if cred.from_client {
            return self.client_rule(channel, cred, false);
        }
        Err(Denied::NoIngestSecret)
    }

    fn client_rule(
        &self,
        channel: &str,
        cred: Credentials<'_>,
        default: bool,
    ) -> Result<(), Denied> {
        if !cred.from_client {
            return Ok(());
        }
        let allowed = match (&self.client_publish, ChannelSet::parse(channel)) {
            (None, _) => default,
            (Some(list), Some(set)) => list.iter().any(|p| p.covers(&set)),
            (Some(_), None) => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Denied::ChannelForbidden(channel.to_owned()))
        }
    }

    /// May a client subscribe to `channel` (a valid name or pattern) with this token?
    pub fn subscribe(&self, channel: &str, token: Option<&str>) -> Result<(), Denied> {
        if self.open || self.protected.is_empty() {
            return Ok(());
        }
        let Some(wanted) = ChannelSet::parse(channel) else {
            return Ok(());
        };
        if !self.protected.iter().any(|p| p.meets(&wanted)) {
            return Ok(());
        }
        let refusal = match &self.verifier {
            Some(v) => match v.allows(token, &wanted) {
                Ok(()) => return Ok(()),
                Err(r) => r,
            },
            None => TokenRefusal::Invalid,
        };
        Err(Denied::Token {
            channel: channel.to_owned(),
            refusal,
        })
    }

    /// Whether a request from `origin` may proceed (no Origin header: not a browser, allowed).
    pub fn origin_ok(&self, origin: Option<&str>) -> bool {
        if self.open || self.allowed_origins.is_empty() {
            return true;
        }
        origin.is_none_or(|o| self.allowed_origins.iter().any(|a| a == o || a == "*"))
    }
}

/// Everything one mount enforces, built once from its configuration.
pub struct MountPolicy {
    pub timeout: Duration,
    pub ping: Option<Duration>,
    pub limits: LimitsConfig,
    pub auth: Auth,
    /// Handshakes and live sessions per client address.
    pub limiter: Limiter,
    /// The backend asked about handshakes and subscribes (and perhaps publishes), if any.
    pub hook: Option<Hook>,
}

impl MountPolicy {
    pub fn new(c: &MountConfig) -> MountPolicy {
        let a = &c.auth;
        let sets = |list: &[String]| list.iter().filter_map(|p| ChannelSet::parse(p)).collect();
        let open = a.mode == AuthMode::Open;
        MountPolicy {
            timeout: c.timeout,
            ping: c.ping,
            limits: c.limits.clone(),
            auth: Auth {
                open,
                publish_secret: a.publish_secret.clone(),
                verifier: a.token_secret.as_ref().map(|s| Verifier::new(s.as_bytes())),
                protected: sets(&a.protect),
                client_publish: a.client_publish.as_deref().map(sets),
                allow_advice: a.allow_advice,
                allowed_origins: a.allowed_origins.clone(),
            },
            hook: a.hook.clone().map(|config| Hook {
                cache: hook::Cache::new(config.cache_ttl),
                config,
            }),
            limiter: if open {
                Limiter::new(0.0, 1, 0)
            } else {
                Limiter::new(
                    c.limits.handshake_rate,
                    c.limits.handshake_burst,
                    c.limits.max_clients_per_ip,
                )
            },
        }
    }

    /// What deliveries leave out: credentials and (unless allowed) publisher advice; nothing
    /// in open mode.
    pub fn strip(&self) -> Strip<'static> {
        if self.auth.open {
            return Strip::default();
        }
        Strip {
            advice: !self.auth.allow_advice,
            ext_keys: if self.hook.is_some() {
                &HOOK_CREDENTIAL_KEYS
            } else {
                &CREDENTIAL_KEYS
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(list: &[&str]) -> Vec<ChannelSet> {
        list.iter().map(|s| ChannelSet::parse(s).unwrap()).collect()
    }

    #[test]
    fn publish_rules() {
        let ingest = Credentials::default();
        let client = Credentials {
            from_client: true,
            ..Credentials::default()
        };
        let open_door = Auth::default();
        assert!(open_door.publish("/u/1", ingest).is_ok());
        assert!(open_door.publish("/u/1", client).is_ok());

        let auth = Auth {
            publish_secret: Some(Secret::new("s3cret")),
            client_publish: Some(sets(&["/chat/**"])),
            ..Auth::default()
        };
        assert_eq!(
            auth.publish("/u/1", ingest).unwrap_err().to_string(),
            "403::Publishing needs the ingest secret (ext.password or Authorization: Bearer)"
        );
        let with_password = Credentials {
            password: Some("s3cret"),
            ..ingest
        };
        assert!(auth.publish("/u/1", with_password).is_ok());
        let wrong = Credentials {
            password: Some("s3cre"),
            ..ingest
        };
        assert!(auth.publish("/u/1", wrong).is_err());
        let bearer = Credentials {
            bearer: true,
            ..ingest
        };
        assert!(auth.publish("/u/1", bearer).is_ok());
        assert!(auth.publish("/chat/room/1", client).is_ok());
        let err = auth.publish("/u/1", client).unwrap_err();
        assert_eq!(err, Denied::ChannelForbidden("/u/1".into()));
        assert_eq!(err.to_string(), "403:/u/1:Forbidden channel");
        assert!(auth.bearer_ok(Some("Bearer s3cret")));
        assert!(auth.bearer_ok(Some("bearer  s3cret")));
        assert!(!auth.bearer_ok(Some("Bearer nope")));
        assert!(!auth.bearer_ok(Some("Basic s3cret")));

        let secret_only = Auth {
            publish_secret: Some(Secret::new("x")),
            ..Auth::default()
        };
        assert_eq!(
            secret_only.publish("/chat", client),
            Err(Denied::ChannelForbidden("/chat".into()))
        );
        let open = Auth {
            open: true,
            ..secret_only
        };
        assert!(open.publish("/chat", ingest).is_ok());
    }

    #[test]
    fn subscribe_rules() {
        let auth = Auth {
            verifier: Some(Verifier::new(b"k")),
            protected: sets(&["/users/*"]),
            ..Auth::default()
        };
        let later = token::now_secs() + 600;
        let t = token::mint(b"k", &["/users/42"], later);
        assert!(auth.subscribe("/public", None).is_ok());
        assert!(auth.subscribe("/users/42/x", None).is_ok());
        assert!(auth.subscribe("/users/42", Some(&t)).is_ok());
        let err = auth.subscribe("/users/42", None).unwrap_err();
        assert_eq!(err.to_string(), "403:/users/42:Subscription needs a token");
        assert!(auth.subscribe("/*", None).is_ok());
        for wide in ["/users/*", "/users/**", "/**"] {
            assert!(auth.subscribe(wide, Some(&t)).is_err(), "{wide}");
        }
        assert_eq!(
            auth.subscribe("/users/43", Some(&t)),
            Err(Denied::Token {
                channel: "/users/43".into(),
                refusal: TokenRefusal::WrongChannel
            })
        );
        let wide = token::mint(b"k", &["/users/*"], later);
        assert!(auth.subscribe("/users/*", Some(&wide)).is_ok());
    }

    #[test]
    fn only_the_allowed_origins_connect() {
        let auth = Auth {
            allowed_origins: vec!["https://app.example.com".into()],
            ..Auth::default()
        };
        assert!(auth.origin_ok(None));
        assert!(auth.origin_ok(Some("https://app.example.com")));
        assert!(!auth.origin_ok(Some("https://evil.example")));
    }
}
