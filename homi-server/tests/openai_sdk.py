"""The official `openai` Python package against Homi's OpenAI-compatible door.

Run by scripts/openai-sdk-test.sh with HOMI_BASE_URL (the server) and
HOMI_TOKEN (a Homi access token, used as the API key).
"""
import os
import time

import openai
from openai import OpenAI

base = os.environ["HOMI_BASE_URL"] + "/v1"
client = OpenAI(base_url=base, api_key=os.environ["HOMI_TOKEN"], max_retries=0)
checks = 0

models = [m.id for m in client.models.list()]
assert models, models
checks += 1

reply = client.chat.completions.create(
    model=models[0],
    messages=[
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "My favourite colour is teal"},
    ],
)
assert reply.object == "chat.completion", reply
assert reply.choices[0].message.role == "assistant"
assert reply.choices[0].message.content == "You said: My favourite colour is teal", reply
assert reply.choices[0].finish_reason == "stop"
checks += 1

# Streaming: deltas that add up to the reply, then finish_reason "stop".
chunks = list(
    client.chat.completions.create(
        model=models[0],
        messages=[{"role": "user", "content": "Tell me a story"}],
        stream=True,
    )
)
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
# (The worker may already have extracted the first turn: then the fake model
# adds what it was shown to remember.)
assert text.startswith("You said: Tell me a story"), text
assert chunks[-1].choices[0].finish_reason == "stop", chunks[-1]
assert len(chunks) > 3, len(chunks)
checks += 1

# The server's worker extracts memories after the replies; a later request
# is given them (the fake model repeats the memories it was shown).
deadline = time.time() + 20
while True:
    answer = client.chat.completions.create(
        model=models[0],
        messages=[{"role": "user", "content": "What is my favourite colour, teal?"}],
    ).choices[0].message.content
    if "I remember:" in answer and "teal" in answer.split("I remember:")[1]:
        break
    assert time.time() < deadline, answer
    time.sleep(0.2)
checks += 1

# An agent's transcript with a tool call and its result: accepted, and the
# reply answers the user's message (tool messages go to the model, are never
# stored as the user's words).
tool_call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Porto\"}"}}
reply = client.chat.completions.create(
    model=models[0],
    messages=[
        {"role": "user", "content": "What is the weather in Porto?"},
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"sky\": \"sunny\"}"},
        {"role": "assistant", "content": "It is sunny in Porto."},
        {"role": "user", "content": "Then I will walk by the river"},
    ],
)
assert reply.choices[0].message.content.startswith("You said: Then I will walk by the river"), reply
# The step after a tool call: the last user message, then the call and its result.
reply = client.chat.completions.create(
    model=models[0],
    messages=[
        {"role": "user", "content": "Check the weather in Lisbon"},
        {"role": "assistant", "content": None, "tool_calls": [dict(tool_call, id="call_2")]},
        {"role": "tool", "tool_call_id": "call_2", "content": "{\"sky\": \"rain\"}"},
    ],
)
assert reply.choices[0].message.content, reply
checks += 1

# A wrong key is refused the way OpenAI refuses one.
bad = OpenAI(base_url=base, api_key="not-a-token", max_retries=0)
try:
    bad.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401
    assert e.body["type"] == "unauthorized", e.body
checks += 1

# Invalid input is a 4xx with a message naming the field.
try:
    client.chat.completions.create(model="x", messages=[{"role": "assistant", "content": "hi"}])
    raise AssertionError("a request without a user message was accepted")
except openai.UnprocessableEntityError as e:
    assert "messages" in e.message, e.message
checks += 1

print(f"{checks} passed, 0 failed")
