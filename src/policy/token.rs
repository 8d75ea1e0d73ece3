//! Subscribe tokens: a JWT signed with HS256 (HMAC-SHA256) by the product backend, carried in
//! the subscribe message's `ext.token`, naming the channels or patterns it allows and when it
//! expires:
//!
//! ```json
//! {"channels": ["/users/42", "/users/42/**"], "exp": 1767225600}
//! ```
//!
//! `channels` may also be a single string. `exp` is required (seconds since the epoch).

use crate::bayeux::ChannelSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Seconds of clock skew tolerated on `exp`.
pub const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    channels: OneOrMany,
    exp: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Why a token was refused (shown in the subscribe error, never the token itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Missing,
    Invalid,
    Expired,
    WrongChannel,
}

impl TokenRefusal {
    pub fn text(self) -> &'static str {
        match self {
            TokenRefusal::Missing => "Subscription needs a token",
            TokenRefusal::Invalid => "Invalid token",
            TokenRefusal::Expired => "Token expired",
            TokenRefusal::WrongChannel => "Token does not cover this channel",
        }
    }
}

/// Checks HS256 tokens with one key.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    pub fn new(secret: &[u8]) -> Verifier {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp"]);
        Verifier {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Whether `token` is valid now and names `wanted` or a pattern covering it.
    pub fn allows(&self, token: Option<&str>, wanted: &ChannelSet) -> Result<(), TokenRefusal> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(TokenRefusal::Missing)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenRefusal::Expired,
                _ => TokenRefusal::Invalid,
            },
        )?;
        let names = match &data.claims.channels {
            OneOrMany::One(c) => std::slice::from_ref(c),
            OneOrMany::Many(v) => v.as_slice(),
        };
        let covered = names
            .iter()
            .filter_map(|n| ChannelSet::parse(n))
            .any(|granted| granted.covers(wanted));
        if covered {
            Ok(())
        } else {
            Err(TokenRefusal::WrongChannel)
        }
    }
}

/// Signs a token for `channels` expiring at `exp` (seconds since the epoch): what the product
/// backend does, here for tests and `bayou --mint-token`.
pub fn mint(secret: &[u8], channels: &[&str], exp: u64) -> String {
    let claims = Claims {
        channels: OneOrMany::Many(channels.iter().map(|c| c.to_string()).collect()),
        exp,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap_or_default()
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> ChannelSet {
        ChannelSet::parse(s).unwrap()
    }

    #[test]
    fn accepts_and_refuses() {
        let v = Verifier::new(b"k3y");
        let later = now_secs() + 600;
        let t = mint(b"k3y", &["/users/42", "/users/42/**"], later);
        assert_eq!(v.allows(Some(&t), &set("/users/42")), Ok(()));
        assert_eq!(v.allows(Some(&t), &set("/users/42/x/*")), Ok(()));
        assert_eq!(
            v.allows(Some(&t), &set("/users/43")),
            Err(TokenRefusal::WrongChannel)
        );
        assert_eq!(
            v.allows(Some(&t), &set("/users/*")),
            Err(TokenRefusal::WrongChannel)
        );
        assert_eq!(
            v.allows(None, &set("/users/42")),
            Err(TokenRefusal::Missing)
        );
        assert_eq!(
            v.allows(Some(""), &set("/users/42")),
            Err(TokenRefusal::Missing)
        );
        let other_key = mint(b"other", &["/users/42"], later);
        assert_eq!(
            v.allows(Some(&other_key), &set("/users/42")),
            Err(TokenRefusal::Invalid)
        );
        let old = mint(b"k3y", &["/users/42"], now_secs() - 60);
        assert_eq!(
            v.allows(Some(&old), &set("/users/42")),
            Err(TokenRefusal::Expired)
        );
        assert_eq!(
            v.allows(Some("not.a.jwt"), &set("/users/42")),
            Err(TokenRefusal::Invalid)
        );
        let none_alg =
            "eyJhbGciOiJub25lIn0.eyJjaGFubmVscyI6Ii91c2Vycy80MiIsImV4cCI6OTk5OTk5OTk5OX0.";
        assert_eq!(
            v.allows(Some(none_alg), &set("/users/42")),
            Err(TokenRefusal::Invalid)
        );
    }
}
