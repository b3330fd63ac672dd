"""The peer for benches/ratelimit.rs: the openai-python SDK with its default retries
(2) and an asyncio semaphore, sending the same first requests rbplan sends, one per
service. Prints one JSON line: items lost (raised after the SDK's retries) and seconds.

    python3 benches/sdk_peer.py BASE_URL N CONCURRENCY BODY_JSON
"""
import asyncio
import json
import sys
import time

from openai import AsyncOpenAI


async def main():
    base, n, conc, body_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    body = json.load(open(body_path))
    client = AsyncOpenAI(base_url=base, api_key="sk-bench-not-a-key")
    sem = asyncio.Semaphore(conc)
    lost = 0

    async def one(i):
        nonlocal lost
        messages = json.loads(json.dumps(body["messages"]).replace("svc-00", f"svc-{i:02}"))
        async with sem:
            try:
                await client.chat.completions.create(
                    model=body["model"], messages=messages, max_tokens=body.get("max_tokens")
                )
            except Exception:
                lost += 1

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    print(json.dumps({"lost": lost, "secs": time.monotonic() - t0}))


asyncio.run(main())
