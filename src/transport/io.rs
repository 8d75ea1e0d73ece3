//! Socket I/O every transport shares: reading onto the end of a buffer, writing queued frames
//! in coalesced writes, and taking a stream's descriptor to hand it on.

use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

/// Bytes reserved for each socket read.
pub const READ_CHUNK: usize = 4096;

/// Most bytes copied into one coalesced write, and most a writer takes from its outbox at a
/// time: a slow consumer's writer holds at most this much while blocked.
pub const COALESCE_MAX: usize = 64 * 1024;

/// Reads more bytes onto the end of `buf`. Returns the count (0 at end of stream).
pub async fn read_more<R: AsyncReadRent>(
    r: &mut R,
    mut buf: BytesMut,
) -> (std::io::Result<usize>, BytesMut) {
    use monoio::buf::IoBufMut;
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
    let len = buf.len();
    let (res, slice) = r.read(buf.slice_mut(len..)).await;
    (res, slice.into_inner())
}

/// Writes everything queued: small frames coalesced into one write of up to `COALESCE_MAX`
/// bytes, a larger frame as it is.
pub async fn write_frames<W: AsyncWriteRent>(
    wr: &mut W,
    frames: &mut Vec<Bytes>,
) -> std::io::Result<()> {
    let res = write_batches(wr, frames).await;
    frames.clear();
    res
}

async fn write_batches<W: AsyncWriteRent>(wr: &mut W, frames: &[Bytes]) -> std::io::Result<()> {
    let mut i = 0;
    while i < frames.len() {
        let (j, size) = batch(frames, i);
        let res = if j == i + 1 {
            wr.write_all(frames[i].clone()).await.0
        } else {
            let mut out = BytesMut::with_capacity(size);
            frames[i..j].iter().for_each(|f| out.extend_from_slice(f));
            wr.write_all(out).await.0
        };
        res?;
        i = j;
    }
    Ok(())
}

/// The write that starts at frame `i`: the end of the frames that fit in `COALESCE_MAX` bytes
/// (at least one) and their size.
fn batch(frames: &[Bytes], i: usize) -> (usize, usize) {
    let (mut j, mut size) = (i + 1, frames[i].len());
    while j < frames.len() && size + frames[j].len() <= COALESCE_MAX {
        size += frames[j].len();
        j += 1;
    }
    (j, size)
}

/// Takes the descriptor out of a stream (ending its registration with the runtime), to park it
/// or hand it to another worker.
pub fn into_owned_fd(stream: TcpStream) -> OwnedFd {
    // SAFETY: `into_raw_fd` gives up the stream's descriptor without closing it, and nothing
    // else owns it, so the `OwnedFd` is its one owner.
    unsafe { OwnedFd::from_raw_fd(stream.into_raw_fd()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(sizes: &[usize]) -> Vec<Bytes> {
        sizes.iter().map(|&n| Bytes::from(vec![b'x'; n])).collect()
    }

    #[test]
    fn small_frames_share_a_write() {
        let f = frames(&[10, 20, 30]);
        assert_eq!(batch(&f, 0), (3, 60));
        assert_eq!(batch(&f, 1), (3, 50));
    }

    #[test]
    fn a_batch_stops_before_going_over() {
        let f = frames(&[COALESCE_MAX - 10, 10, 1]);
        assert_eq!(batch(&f, 0), (2, COALESCE_MAX));
        assert_eq!(batch(&f, 2), (3, 1));
    }

    #[test]
    fn a_large_frame_goes_alone() {
        let f = frames(&[5, COALESCE_MAX + 1, 5]);
        assert_eq!(batch(&f, 0), (1, 5));
        assert_eq!(batch(&f, 1), (2, COALESCE_MAX + 1));
        assert_eq!(batch(&f, 2), (3, 5));
    }
}
