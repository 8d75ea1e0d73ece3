//! Bayeux errors as data (spec section 6): `<code>:<args joined by ",">:<text>`.

/// The error table Faye defines (`src/protocol/error.js`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    VersionMismatch,
    ConntypeMismatch,
    ExtMismatch,
    BadRequest,
    ClientUnknown,
    ParameterMissing,
    ChannelForbidden,
    ChannelUnknown,
    ChannelInvalid,
    ExtUnknown,
    PublishFailed,
    ServerError,
}

impl Code {
    pub fn number(self) -> u16 {
        match self {
            Code::VersionMismatch => 300,
            Code::ConntypeMismatch => 301,
            Code::ExtMismatch => 302,
            Code::BadRequest => 400,
            Code::ClientUnknown => 401,
            Code::ParameterMissing => 402,
            Code::ChannelForbidden => 403,
            Code::ChannelUnknown => 404,
            Code::ChannelInvalid => 405,
            Code::ExtUnknown => 406,
            Code::PublishFailed => 407,
            Code::ServerError => 500,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Code::VersionMismatch => "Version mismatch",
            Code::ConntypeMismatch => "Connection types not supported",
            Code::ExtMismatch => "Extension mismatch",
            Code::BadRequest => "Bad request",
            Code::ClientUnknown => "Unknown client",
            Code::ParameterMissing => "Missing required parameter",
            Code::ChannelForbidden => "Forbidden channel",
            Code::ChannelUnknown => "Unknown channel",
            Code::ChannelInvalid => "Invalid channel",
            Code::ExtUnknown => "Unknown extension",
            Code::PublishFailed => "Failed to publish",
            Code::ServerError => "Internal server error",
        }
    }

    /// The wire string, e.g. `401:abc:Unknown client`.
    pub fn with(self, args: &[&str]) -> String {
        format!("{}:{}:{}", self.number(), args.join(","), self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::Code::*;

    #[test]
    fn strings_byte_for_byte() {
        assert_eq!(ClientUnknown.with(&["abc"]), "401:abc:Unknown client");
        assert_eq!(
            ParameterMissing.with(&["clientId"]),
            "402:clientId:Missing required parameter"
        );
        assert_eq!(
            ConntypeMismatch.with(&["iframe", "flash"]),
            "301:iframe,flash:Connection types not supported"
        );
        assert_eq!(
            ConntypeMismatch.with(&[]),
            "301::Connection types not supported"
        );
        assert_eq!(
            ChannelForbidden.with(&["/meta/foo"]),
            "403:/meta/foo:Forbidden channel"
        );
        assert_eq!(ChannelInvalid.with(&[""]), "405::Invalid channel");
        let table = [
            (VersionMismatch, 300),
            (ConntypeMismatch, 301),
            (ExtMismatch, 302),
            (BadRequest, 400),
            (ClientUnknown, 401),
            (ParameterMissing, 402),
            (ChannelForbidden, 403),
            (ChannelUnknown, 404),
            (ChannelInvalid, 405),
            (ExtUnknown, 406),
            (PublishFailed, 407),
            (ServerError, 500),
        ];
        for (code, n) in table {
            assert_eq!(code.number(), n);
            assert!(code.with(&[]).starts_with(&format!("{n}::")));
        }
    }
}
