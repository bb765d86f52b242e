#!/usr/bin/env python3
"""A stand-in for the `ollama` binary of the ollama/ollama image, for deployment tests.

No model runs here: `serve` answers the parts of Ollama's HTTP API that the stack uses, with
Ollama's field names, and the client commands the compose file calls (`list`, `pull`, `show`)
talk to it as the real CLI does, through OLLAMA_HOST.

    ollama serve              GET /, /api/version, /api/tags; POST /api/show, /api/pull, /api/generate
                              (a `format` schema is honoured as a grammar would: each property's
                              first enum choice)
    ollama list               the pulled models
    ollama pull NAME          marks NAME pulled (kept under ~/.ollama, the image's model volume)
    ollama show NAME          exits 1 if NAME was not pulled

As with Ollama, a model must be pulled before /api/generate or /api/show answer for it (404
otherwise), so a client's pull-on-missing path runs. Every request is logged to stdout with the
caller's address, which tells a test who reached the server.
"""

import datetime
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "0.12.6"
MODELS = os.path.join(os.path.expanduser("~"), ".ollama", "models", "pulled.json")
# Names no sensor, parameter or number, so a client that checks a summary against its facts
# accepts it; the answer when a request asks for no format.
ANSWER = "All anomalies of this window are listed; check the equipment they name."


def answer_for(request):
    """The response text: with `format` a JSON schema, what a grammar-constrained model may
    write: an object with each property's first `enum` choice (or an empty string); with
    `format: "json"`, an empty object; otherwise ANSWER."""
    schema = request.get("format")
    if isinstance(schema, dict):
        properties = schema.get("properties") or {}
        filled = {}
        for name, spec in properties.items():
            choices = spec.get("enum") if isinstance(spec, dict) else None
            filled[name] = choices[0] if choices else ""
        return json.dumps(filled)
    if schema == "json":
        return "{}"
    return ANSWER


def host_port():
    """OLLAMA_HOST as the real CLI reads it: [scheme://]host[:port], 0.0.0.0 meaning this host."""
    value = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434").split("://")[-1].rstrip("/")
    host, _, port = value.rpartition(":") if ":" in value else (value, "", "11434")
    return host or "127.0.0.1", int(port or 11434)


def pulled():
    try:
        with open(MODELS) as file:
            return json.load(file)
    except (OSError, ValueError):
        return {}


def mark_pulled(name):
    models = pulled()
    models[name] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    os.makedirs(os.path.dirname(MODELS), exist_ok=True)
    with open(MODELS + ".tmp", "w") as file:
        json.dump(models, file)
    os.replace(MODELS + ".tmp", MODELS)


def model_entry(name, modified):
    return {
        "name": name,
        "model": name,
        "modified_at": modified,
        "size": 1,
        "digest": "0" * 64,
        "details": {"format": "gguf", "family": "stand-in", "parameter_size": "0", "quantization_level": "none"},
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-ollama"
    sys_version = ""

    def log_message(self, format, *args):
        print(f"{self.client_address[0]} {format % args}", flush=True)

    def send_json(self, body, status=200):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return {}

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if self.path == "/":
            data = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(data)
        elif self.path == "/api/version":
            self.send_json({"version": VERSION})
        elif self.path == "/api/tags":
            self.send_json({"models": [model_entry(name, at) for name, at in sorted(pulled().items())]})
        else:
            self.send_json({"error": "not found"}, 404)

    def do_POST(self):
        request = self.body()
        # Ollama takes "model"; older clients (ollama-rs' show and pull) send "name".
        name = request.get("model") or request.get("name") or ""
        if self.path == "/api/pull":
            mark_pulled(name)
            if request.get("stream", True):
                lines = [{"status": "pulling manifest"}, {"status": "success"}]
                data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            else:
                self.send_json({"status": "success"})
        elif name not in pulled():
            self.send_json({"error": f"model '{name}' not found"}, 404)
        elif self.path == "/api/show":
            self.send_json(
                {
                    "modelfile": f"FROM {name}",
                    "parameters": "",
                    "template": "{{ .Prompt }}",
                    "details": model_entry(name, pulled()[name])["details"],
                    "model_info": {},
                }
            )
        elif self.path == "/api/generate":
            now = datetime.datetime.now(datetime.timezone.utc).isoformat()
            answer = answer_for(request)
            self.send_json(
                {
                    "model": name,
                    "created_at": now,
                    "response": answer,
                    "done": True,
                    "done_reason": "stop",
                    "total_duration": 1000000,
                    "eval_count": len(answer.split()),
                }
            )
        else:
            self.send_json({"error": "not found"}, 404)


def call(method, path, body=None):
    host, port = host_port()
    if host == "0.0.0.0":
        host = "127.0.0.1"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{host}:{port}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def main(argv):
    command = argv[1] if len(argv) > 1 else "serve"
    try:
        if command == "serve":
            # As PID 1 of its container it has no default action for SIGTERM: without this,
            # `docker stop` waits out its grace period and kills it.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            host, port = host_port()
            print(f"fake ollama {VERSION} listening on {host}:{port}", flush=True)
            ThreadingHTTPServer((host, port), Handler).serve_forever()
        elif command == "list":
            print("NAME\tID\tSIZE\tMODIFIED")
            for model in call("GET", "/api/tags")["models"]:
                print(f"{model['name']}\t{model['digest'][:12]}\t1 B\t{model['modified_at']}")
        elif command == "pull" and len(argv) == 3:
            print(call("POST", "/api/pull", {"model": argv[2], "stream": False})["status"])
        elif command == "show" and len(argv) == 3:
            print(call("POST", "/api/show", {"model": argv[2]})["modelfile"])
        elif command in ("-v", "--version"):
            print(f"ollama version is {VERSION}")
        else:
            print(f"usage: ollama serve | list | pull MODEL | show MODEL (got {argv[1:]})", file=sys.stderr)
            return 2
    except urllib.error.HTTPError as err:
        print(f"Error: {json.loads(err.read() or b'{}').get('error', err)}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"Error: could not connect to ollama server: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
