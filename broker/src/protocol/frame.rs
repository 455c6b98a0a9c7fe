//! Kafka framing: a big-endian i32 length, then that many bytes of request header and body.
//!
//! The length is checked before any buffer is sized from it, so a client claiming a 2 GB request, or a negative
//! one, is cut off without the broker allocating anything.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The smallest request header: api key, api version, correlation id, client id length.
pub const MIN_REQUEST_HEADER_BYTES: usize = 2 + 2 + 4 + 2;

/// Why a frame could not be read; each closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes is larger than socket.request.max.bytes={max}")]
    TooLarge { size: i64, max: usize },
    #[error("frame of {0} bytes is too small to hold a request header")]
    TooSmall(i64),
    #[error("connection closed mid-frame")]
    Truncated,
    #[error("i/o error reading frame: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, max: usize) -> Result<Option<Bytes>, FrameError> {
    let mut len_buf = [0u8; 4];
    match reader.read_exact(&mut len_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(len_buf) as i64;
    if size < MIN_REQUEST_HEADER_BYTES as i64 {
        return Err(FrameError::TooSmall(size));
    }
    if size as u64 > max as u64 {
        return Err(FrameError::TooLarge { size, max });
    }
    let mut buf = BytesMut::zeroed(size as usize);
    match reader.read_exact(&mut buf).await {
        Ok(_) => Ok(Some(buf.freeze())),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(e.into()),
    }
}

/// The three fixed fields every request header starts with, read without decoding anything else, so that an
/// unknown key or version can still be answered or logged with its correlation id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl HeaderPrefix {
    pub fn peek(frame: &Bytes) -> Option<HeaderPrefix> {
        if frame.len() < 8 {
            return None;
        }
        let mut b = &frame[..8];
        Some(HeaderPrefix { api_key: b.get_i16(), api_version: b.get_i16(), correlation_id: b.get_i32() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn negative_length_is_refused_without_allocating() {
        let mut input: &[u8] = &(-5i32).to_be_bytes();
        assert!(matches!(read_frame(&mut input, 1024).await, Err(FrameError::TooSmall(-5))));
    }

    #[tokio::test]
    async fn length_over_the_limit_is_refused() {
        let mut input: &[u8] = &0x7FFF_FFF0i32.to_be_bytes();
        assert!(matches!(read_frame(&mut input, 1024).await, Err(FrameError::TooLarge { .. })));
    }

    #[tokio::test]
    async fn clean_eof_between_frames_is_not_an_error() {
        let mut input: &[u8] = &[];
        assert!(matches!(read_frame(&mut input, 1024).await, Ok(None)));
    }

    #[tokio::test]
    async fn eof_mid_frame_is_truncated() {
        let mut data = 20i32.to_be_bytes().to_vec();
        data.extend_from_slice(&[0u8; 5]);
        let mut input: &[u8] = &data;
        assert!(matches!(read_frame(&mut input, 1024).await, Err(FrameError::Truncated)));
    }

    #[tokio::test]
    async fn whole_frame_is_returned() {
        let mut data = 10i32.to_be_bytes().to_vec();
        data.extend_from_slice(&[0, 18, 0, 3, 0, 0, 0, 7, 0xff, 0xff]);
        let mut input: &[u8] = &data;
        let frame = read_frame(&mut input, 1024).await.unwrap().unwrap();
        let prefix = HeaderPrefix::peek(&frame).unwrap();
        assert_eq!(prefix, HeaderPrefix { api_key: 18, api_version: 3, correlation_id: 7 });
    }
}
