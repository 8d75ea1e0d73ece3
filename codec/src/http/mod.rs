//! HTTP/1.1 codec: request heads, chunked bodies, urlencoded forms and responses, all sans-IO.

pub mod body;
pub mod form;
pub mod request;
pub mod response;

pub use request::{BodyKind, Head, HeadError, Limits, parse_head, parse_head_into};
pub use response::Response;
