//! Netstring framing: each message is `<length>:<bytes>,` with the length in ASCII decimal.
//!
//! [`NetstringCodec`] decodes frames up to a maximum size. A frame whose declared length is
//! over the maximum is not read into memory: the decoder reports it once as
//! [`Frame::TooLarge`] and then skips its bytes, so the connection can answer with an error
//! and go on. A broken frame (a length that is not digits, a missing `,`) cannot be skipped,
//! since nothing says where the next frame starts: that is a [`CodecError::Malformed`], after
//! which the peer should be told and the connection closed.
//!
//! The maximum can be shared ([`NetstringCodec::with_limit`]) so that a server can raise it
//! once a peer has logged in. Memory is taken as bytes arrive, never for the declared
//! length alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The default maximum frame: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The most buffer reserved ahead of the bytes of a frame.
const MAX_RESERVE: usize = 64 * 1024;

/// The most digits a length may have (enough for any `u64`).
const MAX_DIGITS: usize = 20;

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A frame's payload.
    Message(Bytes),
    /// A frame of `len` bytes, over the maximum; its bytes are being skipped.
    TooLarge { len: u64 },
}

/// Why framing failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a netstring; the stream cannot be resynchronised.
    #[error("malformed netstring: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a length prefix.
    Head,
    /// Skipping an oversized frame: this many payload bytes are left, then the `,`.
    Skip(u64),
}

/// The netstring codec; see the module docs.
#[derive(Debug, Clone)]
pub struct NetstringCodec {
    max: Arc<AtomicUsize>,
    state: State,
}

impl Default for NetstringCodec {
    fn default() -> Self {
        NetstringCodec::new(DEFAULT_MAX_FRAME)
    }
}

impl NetstringCodec {
    /// A codec accepting frames of at most `max` bytes.
    pub fn new(max: usize) -> NetstringCodec {
        NetstringCodec::with_limit(Arc::new(AtomicUsize::new(max)))
    }

    /// A codec whose maximum is `max` as it is when each frame's length is read.
    pub fn with_limit(max: Arc<AtomicUsize>) -> NetstringCodec {
        NetstringCodec {
            max,
            state: State::Head,
        }
    }

    /// The largest payload accepted.
    pub fn max_frame(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }
}

fn malformed(msg: impl Into<String>) -> CodecError {
    CodecError::Malformed(msg.into())
}

impl Decoder for NetstringCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        loop {
            match self.state {
                State::Skip(left) => {
                    if left > 0 {
                        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                        buf.advance(n);
                        self.state = State::Skip(left - n as u64);
                        if n == 0 || left > n as u64 {
                            return Ok(None);
                        }
                        continue;
                    }
                    let Some(&last) = buf.first() else {
                        return Ok(None);
                    };
                    if last != b',' {
                        return Err(malformed("an oversized frame does not end with ','"));
                    }
                    buf.advance(1);
                    self.state = State::Head;
                }
                State::Head => {
                    let scan = buf.len().min(MAX_DIGITS + 1);
                    let Some(colon) = buf[..scan].iter().position(|&b| b == b':') else {
                        if let Some(&b) = buf[..scan].iter().find(|b| !b.is_ascii_digit()) {
                            return Err(malformed(format!(
                                "the length contains {:?}",
                                char::from(b)
                            )));
                        }
                        if buf.len() > MAX_DIGITS {
                            return Err(malformed("the length has too many digits"));
                        }
                        return Ok(None);
                    };
                    let digits = &buf[..colon];
                    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                        return Err(malformed("the length is not a decimal number"));
                    }
                    // At most 20 digits: parsing can only overflow u64, which is over any max.
                    let len = digits.iter().try_fold(0u64, |acc, d| {
                        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
                    });
                    let len = len.unwrap_or(u64::MAX);
                    if len > self.max_frame() as u64 {
                        buf.advance(colon + 1);
                        self.state = State::Skip(len);
                        return Ok(Some(Frame::TooLarge { len }));
                    }
                    // len <= max, which is a usize.
                    let len = len as usize;
                    let need = colon + 1 + len + 1;
                    if buf.len() < need {
                        // A peer declaring a large frame gets memory as it sends bytes.
                        buf.reserve((need - buf.len()).min(MAX_RESERVE));
                        return Ok(None);
                    }
                    if buf[need - 1] != b',' {
                        return Err(malformed(format!(
                            "a frame of {len} bytes does not end with ','"
                        )));
                    }
                    buf.advance(colon + 1);
                    let payload = buf.split_to(len).freeze();
                    buf.advance(1);
                    return Ok(Some(Frame::Message(payload)));
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() && self.state == State::Head => Ok(None),
            None => Err(malformed("the connection ended inside a frame")),
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for NetstringCodec {
    type Error = CodecError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), CodecError> {
        let payload = item.as_ref();
        let head = payload.len().to_string();
        dst.reserve(head.len() + payload.len() + 2);
        dst.put_slice(head.as_bytes());
        dst.put_u8(b':');
        dst.put_slice(payload);
        dst.put_u8(b',');
        Ok(())
    }
}

/// `payload` as one netstring.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.push(b',');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn decode_all(codec: &mut NetstringCodec, input: &[u8]) -> Result<Vec<Frame>, CodecError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(f) = codec.decode(&mut buf)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn frames_decode_whole_and_split() {
        let mut c = NetstringCodec::new(100);
        let frames = decode_all(&mut c, b"5:hello,0:,3:abc,").unwrap();
        assert_eq!(
            frames,
            vec![
                Frame::Message(Bytes::from_static(b"hello")),
                Frame::Message(Bytes::new()),
                Frame::Message(Bytes::from_static(b"abc")),
            ]
        );
        // Byte by byte.
        let mut c = NetstringCodec::new(100);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in b"11:hello world,2:ok," {
            buf.put_u8(*b);
            while let Some(f) = c.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], Frame::Message(Bytes::from_static(b"hello world")));
    }

    #[test]
    fn a_declared_length_reserves_no_memory_before_its_bytes() {
        let mut c = NetstringCodec::new(16 << 20);
        let mut buf = BytesMut::from(&b"16000000:abc"[..]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() <= 2 * MAX_RESERVE, "{}", buf.capacity());
    }

    #[test]
    fn a_shared_limit_applies_from_the_next_frame() {
        let limit = Arc::new(AtomicUsize::new(4));
        let mut c = NetstringCodec::with_limit(limit.clone());
        let frames = decode_all(&mut c, b"6:abcdef,").unwrap();
        assert_eq!(frames, vec![Frame::TooLarge { len: 6 }]);
        limit.store(100, Ordering::Relaxed);
        let frames = decode_all(&mut c, b"6:abcdef,").unwrap();
        assert_eq!(frames, vec![Frame::Message(Bytes::from_static(b"abcdef"))]);
    }

    #[test]
    fn oversized_frames_are_reported_once_and_skipped() {
        let mut c = NetstringCodec::new(4);
        let frames = decode_all(&mut c, b"10:0123456789,2:ok,").unwrap();
        assert_eq!(
            frames,
            vec![
                Frame::TooLarge { len: 10 },
                Frame::Message(Bytes::from_static(b"ok"))
            ]
        );
        let mut c = NetstringCodec::new(4);
        let frames = decode_all(&mut c, b"99999999999999999999:abc").unwrap();
        assert_eq!(frames, vec![Frame::TooLarge { len: u64::MAX }]);
    }

    #[test]
    fn malformed_frames_are_errors() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"x:abc,",
            b":abc,",
            b"3:abcd",
            b"-1:a,",
            b"123456789012345678901234",
            b"1 :a,",
        ] {
            let mut c = NetstringCodec::new(100);
            let r = decode_all(&mut c, bad);
            assert!(
                matches!(r, Err(CodecError::Malformed(_))),
                "{:?}: {r:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut c = NetstringCodec::new(2);
        assert!(
            decode_all(&mut c, b"3:abcX").is_err(),
            "skipped frame without ','"
        );
    }

    #[test]
    fn eof_inside_a_frame_is_an_error() {
        let mut c = NetstringCodec::new(100);
        let mut buf = BytesMut::from(&b"5:he"[..]);
        assert!(c.decode_eof(&mut buf).is_err());
        let mut buf = BytesMut::new();
        assert!(c.decode_eof(&mut buf).unwrap().is_none());
    }

    #[test]
    fn encoding_matches_the_format() {
        let mut c = NetstringCodec::default();
        let mut dst = BytesMut::new();
        c.encode(b"{}", &mut dst).unwrap();
        assert_eq!(&dst[..], b"2:{},");
        assert_eq!(encode(b""), b"0:,");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200), max in 0usize..64) {
            let mut c = NetstringCodec::new(max);
            let mut buf = BytesMut::from(&data[..]);
            for _ in 0..data.len() + 2 {
                match c.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }

        #[test]
        fn encoded_frames_decode_in_any_chunking(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
            chunk in 1usize..17,
        ) {
            let mut wire = Vec::new();
            for p in &payloads {
                wire.extend(encode(p));
            }
            let mut c = NetstringCodec::new(64);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for part in wire.chunks(chunk) {
                buf.extend_from_slice(part);
                while let Some(Frame::Message(m)) = c.decode(&mut buf).unwrap() {
                    got.push(m.to_vec());
                }
            }
            prop_assert_eq!(got, payloads);
        }
    }
}
