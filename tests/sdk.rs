//! The official Python SDKs (`openai`, `anthropic`; `scripts/test` installs them) against a real
//! gateway over loopback: the Anthropic SDK to an OpenAI-kind target and to an Anthropic target,
//! the OpenAI SDK to an Anthropic target, `client.responses.create` streamed and not, each on a
//! route whose first target is dead (so each fails over).

mod common;

use common::*;
use llmgw::sim::{Behavior, SimKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_work_through_the_gateway() {
    let dead = format!("http://{}/v1", dead_addr().await);
    let anth = sim("anth", Behavior { kind: SimKind::Anthropic, ..instant() }).await;
    let oai = sim("oai", Behavior { responses: true, ..instant() }).await;
    // The dead provider is never ejected, so every call really fails over from it.
    let toml = format!(
        "[health]\neject_consecutive = 10000\neject_error_rate = 1.0\n\n[[providers]]\nname = \"dead\"\nbase_url = \"{dead}\"\nresponses = true\n\n\
         [[providers]]\nname = \"anth\"\nkind = \"anthropic\"\nbase_url = \"{}\"\n\n\
         [[providers]]\nname = \"oai\"\nbase_url = \"{}\"\nresponses = true\n\n\
         [[routes]]\nmodel = \"to-anthropic\"\nstrategy = \"priority\"\ntargets = [{{ provider = \"dead\", model = \"m\" }}, {{ provider = \"anth\", model = \"m\" }}]\n\n\
         [[routes]]\nmodel = \"to-openai\"\nstrategy = \"priority\"\ntargets = [{{ provider = \"dead\", model = \"m\" }}, {{ provider = \"oai\", model = \"m\" }}]\n\n\
         [[routes]]\nmodel = \"responses\"\nstrategy = \"priority\"\ntargets = [{{ provider = \"dead\", model = \"m\" }}, {{ provider = \"oai\", model = \"m\" }}]\n",
        anth.base_url(),
        oai.base_url()
    );
    let gw = gateway(&toml).await;
    let base = format!("http://{}", gw.addr);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/clients.py");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3").arg(script).arg(base).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for what in [
        "openai sdk -> anthropic target",
        "openai sdk -> anthropic target, streamed",
        "anthropic sdk -> to-openai",
        "anthropic sdk -> to-openai, streamed",
        "anthropic sdk -> to-anthropic",
        "anthropic sdk -> to-anthropic, streamed",
        "anthropic sdk count_tokens",
        "openai sdk responses.create",
        "openai sdk responses.create, streamed",
    ] {
        assert!(stdout.lines().any(|l| l == format!("ok {what}")), "{what}:\n{stdout}\n{stderr}");
    }
    let failovers = gw.gw.live.recent(50).iter().filter(|r| r.attempts.len() > 1).count();
    assert!(failovers >= 8, "each call failed over from the dead target: {failovers}");
}
