//! Any bytes an upstream streams, cut anywhere: the framer relays a prefix of them ending on
//! an event boundary, keeps the rest pending, and never panics or loses or invents a byte.
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
});
