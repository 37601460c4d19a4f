"""What a user of the load-balanced gateway runs: the official `openai` client pointed at
nginx, a streamed answer, feedback, and which replica answered each request.

    python client.py http://127.0.0.1:PORT/v1 QUESTION... [--replica a=PID --replica b=PID]

Prints one line per answer and "answers per replica: a=N b=M"; exits 1 when a request
fails.
"""

from __future__ import annotations

import argparse
import sys

import httpx
from openai import OpenAI


def send_feedback(base_url: str, request_id: str, quality: float) -> int:
    """POST /v1/feedback through the load balancer (any replica: one that has not yet seen
    the other's row looks again before answering 404)."""
    return httpx.post(f"{base_url}/feedback", json={"id": request_id,
                                                    "quality": quality}).status_code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("questions", nargs="+")
    parser.add_argument("--model", default="ladder")
    parser.add_argument("--replica", action="append", default=[], metavar="NAME=PID")
    parser.add_argument("--no-feedback", action="store_true")
    args = parser.parse_args()
    names = {pid: name for name, pid in (r.split("=", 1) for r in args.replica)}

    def replica_of(header: str | None) -> str:
        pid = (header or "?").rsplit("-", 1)[-1]  # the gateway's replica id is host-pid
        return names.get(pid, header or "?")

    client = OpenAI(base_url=args.base_url, api_key="unused-without-server-keys",
                    max_retries=0)
    counts: dict[str, int] = {}
    answered = []
    for question in args.questions:
        raw = client.chat.completions.with_raw_response.create(
            model=args.model, messages=[{"role": "user", "content": question}], max_tokens=16)
        answer = raw.parse()
        replica = replica_of(raw.headers.get("x-ladder-replica"))
        counts[replica] = counts.get(replica, 0) + 1
        stages = " → ".join(f"{s['model']}:{s['decision']}"
                            for s in answer.model_extra["ladder"]["stages"])
        text = (answer.choices[0].message.content or "").strip()
        print(f"  [{replica}] {question!r} → {text!r} (answered by {answer.model}; {stages})")
        answered.append((answer.id, text))
    stream = client.chat.completions.create(
        model=args.model, messages=[{"role": "user", "content": args.questions[0]}],
        max_tokens=16, stream=True)
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    print(f"  streamed (SSE through nginx): {''.join(pieces).strip()!r} in {len(pieces)} chunks")
    if not args.no_feedback:  # your users' verdicts; here: any non-empty answer is good
        for request_id, text in answered:
            status = send_feedback(args.base_url, request_id, 1.0 if text else 0.0)
            if status != 200:
                sys.exit(f"feedback for {request_id} got HTTP {status}")
        print(f"  feedback: {len(answered)} labels recorded (through nginx, to either replica)")
    print("answers per replica: " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
