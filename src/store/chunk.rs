//! How history records are kept: a chunk of up to [`super::history::CHUNK`] records per sled
//! entry, in a compact binary encoding (postcard), compressed with zstd. A record takes tens of
//! bytes, not hundreds. Chunks written before this format (JSON lines) are still read.

use super::history::HistoryRecord;

/// Marks a chunk in this format; a JSON-lines chunk starts with `{`.
const MAGIC: &[u8; 3] = b"LH1";

/// zstd's level: fast enough for the writer task, and most of the ratio.
const LEVEL: i32 = 3;

/// A decompressed chunk may not be larger than this: a damaged store cannot make a reader
/// allocate without bound.
const MAX_DECODED: usize = 64 << 20;

/// Encodes records as one chunk: the magic, the record count (u32 LE), then the compressed
/// records.
pub fn encode(records: &[Box<HistoryRecord>]) -> Result<Vec<u8>, String> {
    let plain: Vec<&HistoryRecord> = records.iter().map(|r| &**r).collect();
    let bytes = postcard::to_allocvec(&plain).map_err(|e| e.to_string())?;
    let packed = zstd::bulk::compress(&bytes, LEVEL).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(7 + packed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    out.extend_from_slice(&packed);
    Ok(out)
}

/// The records of a chunk, in either format.
pub fn decode(chunk: &[u8]) -> Result<Vec<HistoryRecord>, String> {
    let Some(rest) = chunk.strip_prefix(MAGIC) else {
        return chunk
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).map_err(|e| e.to_string()))
            .collect();
    };
    let packed = rest.get(4..).ok_or("a truncated chunk")?;
    let bytes = zstd::bulk::decompress(packed, MAX_DECODED).map_err(|e| e.to_string())?;
    postcard::from_bytes(&bytes).map_err(|e| e.to_string())
}

/// How many records a chunk holds, without decoding it.
pub fn count(chunk: &[u8]) -> u64 {
    match chunk.strip_prefix(MAGIC) {
        Some(rest) => rest.get(..4).map_or(0, |n| u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as u64),
        None => chunk.iter().filter(|&&b| b == b'\n').count() as u64,
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
        assert!(decode(b"LH1\x01\x00\x00\x00garbage").is_err(), "a damaged chunk is an error, not a panic");
    }
}
