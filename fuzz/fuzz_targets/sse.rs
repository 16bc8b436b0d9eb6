//! Any bytes an upstream streams, cut anywhere: the framer relays a prefix of them ending on
//! an event boundary, keeps the rest pending, never panics or loses or invents a byte, and
//! counts what it saw as it would had the bytes come in one piece.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use llmgw::providers::sse::EventFramer;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else { return };
    let size = usize::from(cut % 17) + 1;
    let mut framer = EventFramer::default();
    let mut relayed = Vec::new();
    for chunk in stream.chunks(size) {
        let out = framer.push(Bytes::copy_from_slice(chunk));
        if !out.is_empty() {
            assert_eq!(out.last(), Some(&b'\n'), "whole events only");
        }
        relayed.extend_from_slice(&out);
    }
    assert_eq!(relayed.len() + framer.pending(), stream.len());
    assert_eq!(&relayed[..], &stream[..relayed.len()], "bytes relayed as they came");
    assert!(framer.data_events <= framer.events);
    let mut whole = EventFramer::default();
    let out = whole.push(Bytes::copy_from_slice(stream));
    assert_eq!(&out[..], &relayed[..], "the same events, however the stream was cut");
    assert_eq!(
        (whole.events, whole.data_events, whole.done, whole.finished, whole.content),
        (framer.events, framer.data_events, framer.done, framer.finished, framer.content)
    );
});
