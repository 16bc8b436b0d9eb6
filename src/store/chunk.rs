//! How history records are kept: a chunk of up to [`super::history::CHUNK`] records per sled
//! entry, in a compact binary encoding (postcard), compressed with zstd. A record takes tens of
//! bytes, not hundreds. Chunks written before this format (JSON lines) are still read.

use super::history::HistoryRecord;

/// Marks a chunk in this format; a JSON-lines chunk starts with `{`. The binary encoding is not
/// self-describing, so a change to the record's fields takes a new magic, and the old ones stay
/// readable ([`v1`]).
const MAGIC: &[u8; 3] = b"LH2";

/// zstd's level: its fastest strategy. Records are mostly random request ids, so level 3 made
/// the same size (42 MiB a million records in chunks of 128, `store_bench`) with an eighth more
/// of the writer's CPU.
const LEVEL: i32 = 1;

/// A decompressed chunk may not be larger than this: a damaged store cannot make a reader
/// allocate without bound.
const MAX_DECODED: usize = 64 << 20;

thread_local! {
    /// Each writer thread's zstd context, kept: a new one is allocated and zeroed for every
    /// chunk otherwise (more work than compressing a small chunk).
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
    /// Each reading thread's, likewise (a query over a million records reads ~60,000 chunks).
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// Encodes records as one chunk: the magic, the record count (u32 LE), then the compressed
/// records.
pub fn encode(records: &[Box<HistoryRecord>]) -> Result<Vec<u8>, String> {
    let plain: Vec<&HistoryRecord> = records.iter().map(|r| &**r).collect();
    let bytes = postcard::to_allocvec(&plain).map_err(|e| e.to_string())?;
    let packed = COMPRESSOR.with_borrow_mut(|c| match c {
        Some(c) => c.compress(&bytes),
        None => zstd::bulk::Compressor::new(LEVEL).and_then(|new| c.insert(new).compress(&bytes)),
    });
    let packed = packed.map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(7 + packed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    out.extend_from_slice(&packed);
    Ok(out)
}

/// The records of a chunk, in either format.
pub fn decode(chunk: &[u8]) -> Result<Vec<HistoryRecord>, String> {
    if let Some(rest) = chunk.strip_prefix(v1::MAGIC) {
        let old: Vec<v1::Record> = postcard::from_bytes(&unpack(rest)?).map_err(|e| e.to_string())?;
        return Ok(old.into_iter().map(HistoryRecord::from).collect());
    }
    let Some(rest) = chunk.strip_prefix(MAGIC) else {
        return chunk
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).map_err(|e| e.to_string()))
            .collect();
    };
    postcard::from_bytes(&unpack(rest)?).map_err(|e| e.to_string())
}

/// A binary chunk's records, decompressed (past the magic and the count).
fn unpack(rest: &[u8]) -> Result<Vec<u8>, String> {
    let packed = rest.get(4..).ok_or("a truncated chunk")?;
    let plain = DECOMPRESSOR.with_borrow_mut(|d| match d {
        Some(d) => d.decompress(packed, MAX_DECODED),
        None => zstd::bulk::Decompressor::new().and_then(|new| d.insert(new).decompress(packed, MAX_DECODED)),
    });
    plain.map_err(|e| e.to_string())
}

/// How many records a chunk holds, without decoding it.
pub fn count(chunk: &[u8]) -> u64 {
    match chunk.strip_prefix(MAGIC).or_else(|| chunk.strip_prefix(v1::MAGIC)) {
        Some(rest) => rest.get(..4).map_or(0, |n| u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as u64),
        None => chunk.iter().filter(|&&b| b == b'\n').count() as u64,
    }
}

/// The first binary format: attempts had no `resumed`.
mod v1 {
    use serde::{Deserialize, Serialize};

    use crate::store::history::{AttemptRecord, HistoryRecord};

    pub(super) const MAGIC: &[u8; 3] = b"LH1";

    #[derive(Serialize, Deserialize)]
    pub(super) struct Attempt {
        pub provider: String,
        pub model: String,
        pub outcome: String,
        pub status: Option<u16>,
        pub latency_ms: f64,
        pub injected: bool,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct Record {
        pub at_ms: u64,
        pub request_id: String,
        pub route: String,
        pub stream: bool,
        pub status: u16,
        pub total_ms: f64,
        pub ttft_ms: Option<f64>,
        pub attempts: Vec<Attempt>,
        pub tokens_in: Option<u32>,
        pub tokens_out: Option<u32>,
        pub cache: String,
        pub client: Option<String>,
        pub request_body: Option<String>,
        pub response_body: Option<String>,
    }

    impl From<Record> for HistoryRecord {
        fn from(r: Record) -> HistoryRecord {
            let attempts = r.attempts.into_iter().map(|a| AttemptRecord {
                provider: a.provider,
                model: a.model,
                outcome: a.outcome,
                status: a.status,
                latency_ms: a.latency_ms,
                injected: a.injected,
                resumed: false,
            });
            HistoryRecord {
                at_ms: r.at_ms,
                request_id: r.request_id,
                route: r.route,
                stream: r.stream,
                status: r.status,
                total_ms: r.total_ms,
                ttft_ms: r.ttft_ms,
                attempts: attempts.collect(),
                tokens_in: r.tokens_in,
                tokens_out: r.tokens_out,
                cache: r.cache,
                client: r.client,
                request_body: r.request_body,
                response_body: r.response_body,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::AttemptRecord;

    fn record(i: u64) -> Box<HistoryRecord> {
        Box::new(HistoryRecord {
            at_ms: 1_700_000_000_000 + i,
            request_id: format!("3f0c1a52-0c1d-4c6e-9a41-{i:012x}"),
            route: "chat".into(),
            stream: i % 2 == 0,
            status: 200,
            total_ms: 12.5,
            ttft_ms: Some(3.25),
            attempts: vec![AttemptRecord {
                provider: "a".into(),
                model: "m".into(),
                outcome: "ok".into(),
                status: Some(200),
                latency_ms: 12.0,
                injected: i % 7 == 0,
                resumed: i % 5 == 0,
            }],
            tokens_in: Some(3),
            tokens_out: None,
            cache: "miss".into(),
            client: Some("web".into()),
            request_body: (i == 3).then(|| "{\"model\":\"chat\"}".into()),
            response_body: None,
        })
    }

    #[test]
    fn chunks_round_trip_compactly_and_old_ones_still_read() {
        let records: Vec<_> = (0..128).map(record).collect();
        let chunk = encode(&records).unwrap();
        assert_eq!(count(&chunk), 128);
        let back = decode(&chunk).unwrap();
        assert_eq!(back, records.iter().map(|r| (**r).clone()).collect::<Vec<_>>());
        assert!(chunk.len() < 128 * 40, "{} bytes for 128 records", chunk.len());
        let mut json = Vec::new();
        for r in &records[..3] {
            serde_json::to_writer(&mut json, r).unwrap();
            json.push(b'\n');
        }
        assert_eq!(count(&json), 3);
        assert_eq!(decode(&json).unwrap().len(), 3, "JSON-lines chunks from before");
        assert!(decode(b"LH2\x01\x00\x00\x00garbage").is_err(), "a damaged chunk is an error, not a panic");
    }

    #[test]
    fn chunks_of_the_first_binary_format_still_read() {
        let old = vec![v1::Record {
            at_ms: 5,
            request_id: "r".into(),
            route: "chat".into(),
            stream: true,
            status: 200,
            total_ms: 1.0,
            ttft_ms: None,
            attempts: vec![v1::Attempt {
                provider: "a".into(),
                model: "m".into(),
                outcome: "ok".into(),
                status: Some(200),
                latency_ms: 1.0,
                injected: true,
            }],
            tokens_in: None,
            tokens_out: Some(4),
            cache: "off".into(),
            client: None,
            request_body: None,
            response_body: Some("{}".into()),
        }];
        let mut chunk = v1::MAGIC.to_vec();
        chunk.extend_from_slice(&1u32.to_le_bytes());
        chunk.extend(zstd::bulk::compress(&postcard::to_allocvec(&old).unwrap(), LEVEL).unwrap());
        assert_eq!(count(&chunk), 1);
        let back = decode(&chunk).unwrap();
        assert_eq!((back[0].attempts[0].injected, back[0].attempts[0].resumed), (true, false));
        assert_eq!((back[0].tokens_out, back[0].response_body.as_deref()), (Some(4), Some("{}")));
    }
}
