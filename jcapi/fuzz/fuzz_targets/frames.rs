//! Fuzz target: arbitrary bytes through the netstring decoder (in arbitrary chunks, with a
//! small maximum so oversized frames are exercised), every decoded frame through the
//! JSON-RPC parser, and every request's params through each method's typed parameters —
//! what the gateway does with every byte a peer sends. Nothing may panic.
//!
//! `cargo +nightly fuzz run frames` from `jcapi/`. The stable stand-ins are the proptests in
//! `crates/proto` and `jcapi/tests/bad_input.rs`.
#![no_main]

use bytes::BytesMut;
use jc_proto::methods::{
    Announce, CancelJob, CheckIfLockExists, CreateJob, CreateSlotgroup, FindJobs, GetJob,
    GetJobStatus, GetTask, Hello, Ping, RaiseEvent, RetryJob, TaskDone, Withdraw,
};
use jc_proto::{Frame, Message, NetstringCodec};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fn params(msg: &Message) {
    match msg {
        Message::Request(r) => {
            let _ = r.params::<Hello>();
            let _ = r.params::<Ping>();
            let _ = r.params::<CreateJob>();
            let _ = r.params::<GetJobStatus>();
            let _ = r.params::<FindJobs>();
            let _ = r.params::<CheckIfLockExists>();
            let _ = r.params::<CancelJob>();
            let _ = r.params::<RetryJob>();
            let _ = r.params::<RaiseEvent>();
            let _ = r.params::<GetJob>();
            let _ = r.params::<CreateSlotgroup>();
            let _ = r.params::<Announce>();
            let _ = r.params::<Withdraw>();
            let _ = r.params::<GetTask>();
        }
        Message::Notification(n) => {
            let _ = n.params::<TaskDone>();
        }
        Message::Response(_) => {}
    }
    let _ = Message::parse(&msg.to_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 32) + 1;
    let mut codec = NetstringCodec::new(usize::from(first) * 8);
    let mut buf = BytesMut::new();
    for part in rest.chunks(chunk) {
        buf.extend_from_slice(part);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Frame::Message(payload))) => match Message::parse(&payload) {
                    Ok(msg) => params(&msg),
                    Err(e) => {
                        let _ = e.response();
                    }
                },
                Ok(Some(Frame::TooLarge { .. })) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
