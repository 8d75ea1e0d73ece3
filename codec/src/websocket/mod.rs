//! RFC 6455 WebSocket codec: upgrade handshake checks and frame decoding/encoding, sans-IO.
pub mod frame;
pub mod handshake;
pub use frame::{CloseCode, Decoder, Message, Opcode};
