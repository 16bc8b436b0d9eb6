//! Any body a client sends: inspecting it never panics, and a body the gateway accepts still
//! parses the same after its `model` is rewritten for the provider (the byte splice).
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmgw::pipeline::wire::rewrite_model;
use llmgw::providers::openai::ApiPath;
use llmgw::server::request::inspect;

fuzz_target!(|data: &[u8]| {
    for path in [ApiPath::ChatCompletions, ApiPath::Embeddings] {
        let Ok(seen) = inspect(data, path, 64) else { continue };
        let out = rewrite_model(data, seen.model_span.clone(), "upstream \"model\" \u{e9}");
        let again = inspect(&out, path, 64).expect("a rewritten request is still a request");
        assert_eq!(again.model, "upstream \"model\" \u{e9}");
        assert_eq!((again.stream, again.include_usage), (seen.stream, seen.include_usage));
        assert_eq!(&out[..seen.model_span.start], &data[..seen.model_span.start], "nothing before it changes");
    }
});
