#!/usr/bin/env python3
"""A chat request carrying a conversation of about KIB KiB, as clients send them: turns of prose
with escapes (quotes, newlines, tabs). For scripts/bench.sh and scripts/icount.sh.
Usage: conversation.py KIB MODEL [stream]"""
import json
import sys

kib, model, stream = int(sys.argv[1]), sys.argv[2], sys.argv[3:] == ["stream"]
turn = ("The deploy failed at step 3: \"permission denied\" on /var/lib/app.\n"
        "Here is the log, line by line, with timings and the stack trace it printed.\t") * 6
messages, size = [{"role": "system", "content": "You are a careful assistant."}], 0
while size < kib * 1024:
    messages.append({"role": "user" if len(messages) % 2 else "assistant", "content": turn})
    size += len(json.dumps(messages[-1]))
print(json.dumps({"model": model, "stream": stream, "messages": messages}))
