"""The official SDKs against a running llmgw (see tests/sdk.rs): each call goes to a route whose
first target is dead, so each one also fails over. Prints `ok <what>` per check; exits 1 on the
first failure."""
import sys

import anthropic
import openai

base = sys.argv[1]  # http://127.0.0.1:PORT
oai = openai.OpenAI(base_url=f"{base}/v1", api_key="client-key", max_retries=0)
ant = anthropic.Anthropic(base_url=base, api_key="client-key", max_retries=0)


def check(what, cond, detail=""):
    if not cond:
        print(f"FAILED {what}: {detail}")
        sys.exit(1)
    print(f"ok {what}")


# The OpenAI SDK to an Anthropic target.
r = oai.chat.completions.create(model="to-anthropic", messages=[{"role": "user", "content": "hello"}])
check("openai sdk -> anthropic target", r.choices[0].message.content.startswith("[anth]"), r)
chunks = oai.chat.completions.create(
    model="to-anthropic", messages=[{"role": "user", "content": "hello"}], stream=True,
    stream_options={"include_usage": True},
)
text, usage = "", None
for c in chunks:
    if c.choices and c.choices[0].delta.content:
        text += c.choices[0].delta.content
    if c.usage:
        usage = c.usage
check("openai sdk -> anthropic target, streamed", text == r.choices[0].message.content and usage is not None, text)

# The Anthropic SDK to an OpenAI-compatible target, and to an Anthropic one.
for model, who in [("to-openai", "[oai]"), ("to-anthropic", "[anth]")]:
    m = ant.messages.create(model=model, max_tokens=200, messages=[{"role": "user", "content": "hello"}])
    check(f"anthropic sdk -> {model}", m.content[0].text.startswith(who) and m.stop_reason == "end_turn", m)
    with ant.messages.stream(model=model, max_tokens=200, messages=[{"role": "user", "content": "hello"}]) as s:
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    check(f"anthropic sdk -> {model}, streamed", streamed == m.content[0].text and final.stop_reason == "end_turn", streamed)
n = ant.messages.count_tokens(model="to-anthropic", messages=[{"role": "user", "content": "count these"}])
check("anthropic sdk count_tokens", n.input_tokens > 0, n)

# The Responses API.
r = oai.responses.create(model="responses", input="hello")
check("openai sdk responses.create", r.output_text.startswith("[oai]"), r)
text = ""
for ev in oai.responses.create(model="responses", input="hello", stream=True):
    if ev.type == "response.output_text.delta":
        text += ev.delta
check("openai sdk responses.create, streamed", text == r.output_text, text)
