"""`make demo`: the whole flow on this machine: NGINX (from nginx.conf.example) on :8080 in front
of the gateway on :9000 and the stub LLM on :11434, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from pathlib import Path

from llmsec_aio.config import load_config
from tests.support.gateway import running_gateway
from tests.support.nginx import running_nginx
from tests.support.stub_llm import running_stub

NGINX_PORT, LLM_PORT = 8080, 11434


async def main(config_path: Path) -> None:
    config = load_config(config_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with tempfile.TemporaryDirectory(prefix="llmsec-demo-") as tmp:
        async with running_stub(port=LLM_PORT) as stub:
            stub.stream_interval = 0.3
            with running_gateway(config_path, Path(tmp) / "gateway.log", port=config.server.port) as gw, \
                    running_nginx(Path(tmp), gateway_port=gw.port, llm_port=LLM_PORT,
                                  listen_port=NGINX_PORT) as ngx:
                print(f"""
llmsec-aio demo is up:
  NGINX       {ngx.base_url}   (the only address clients use)
  gateway     {gw.base_url}    (log: {gw.log_path})
  stub LLM    http://127.0.0.1:{LLM_PORT}  (OpenAI-compatible, streams 10 events 0.3 s apart)

Log in as an agent (user and password from the first-run output of `make run` / `make demo`):
  TOKEN=$(curl -s -u 'AGNR-xxxxxxxx:PASSWORD' -X POST {ngx.base_url}/llm/login \\
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  curl -N {ngx.base_url}/llm/chat/completions -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/json' \\
       -d '{{"model": "demo", "stream": true, "messages": [{{"role": "user", "content": "hi"}}]}}'
Press Ctrl-C to stop.""", flush=True)
                await stop.wait()


if __name__ == "__main__":
    import sys

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "config.yaml")))
