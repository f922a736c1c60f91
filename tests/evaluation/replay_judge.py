"""A small OpenAI-compatible HTTP server on 127.0.0.1 that replays fixed judgements, so the
`llm` judge's remote backend is tested over real HTTP with replies the test knows.

The reply is chosen by the answer under review: the first key of `replies` found in it wins,
else `default`. An answer containing `FAIL-500` gets an HTTP 500. Every chat or completion request
is counted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ReplayJudge:
    def __init__(self, replies: dict[str, str], default: str = '{"verdict": "safe", "reason": "fine"}',
                 pick: Callable[[str], str] | None = None) -> None:
        self.replies = replies
        self.default = default
        self.pick = pick
        self.requests: list[dict] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ReplayJudge:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reply_for(self, prompt: str) -> str | None:
        if self.pick is not None:
            return self.pick(prompt)
        answer = prompt.split("Answer under review:", 1)[-1]
        if "FAIL-500" in answer:
            return None
        return next((reply for key, reply in self.replies.items() if key in answer), self.default)

    def _handler(self):
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "replay-judge", "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                judge.requests.append({"path": self.path, "body": body,
                                       "authorization": self.headers.get("Authorization")})
                chat = self.path.endswith("/chat/completions")
                reply = judge.reply_for(body["messages"][-1]["content"] if chat else body["prompt"])
                if reply is None:
                    self._send(500, {"error": {"message": "judge crashed", "type": "server_error"}})
                    return
                choice = ({"message": {"role": "assistant", "content": reply}} if chat else {"text": reply})
                self._send(200, {"id": "x", "object": "chat.completion" if chat else "text_completion",
                                 "model": body["model"], "choices": [{"index": 0, "finish_reason": "stop", **choice}],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": 1}})

        return Handler
