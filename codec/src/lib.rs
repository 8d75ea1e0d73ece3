//! Bayou's codecs, sans-IO: bytes in, typed values and bytes out, no sockets, no clocks but
//! what a caller passes, no runtime. `bayeux` is the protocol (messages, their rules and
//! replies, channel names and sets, client ids), `http` HTTP/1.1 request heads, bodies and
//! responses, `websocket` the frame codec and the upgrade handshake. The server crate
//! (`bayou`) re-exports all three under the same names.

pub mod bayeux;
pub mod http;
pub mod websocket;
