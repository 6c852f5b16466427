"""Publish every golden vector's sse.publish(...) call with the real Flask-SSE.

Usage: flask_sse_publish.py REDIS_URL CHANNEL VECTORS_JSONL
"""
import json
import sys

from flask import Flask
from flask_sse import sse


def publish_vectors(blueprint, app, channel, vectors_path):
    """Calls blueprint.publish(...) for every vector with a publish call; prints the count."""
    count = 0
    with app.app_context(), open(vectors_path, encoding="utf-8") as vectors:
        for line in vectors:
            vector = json.loads(line)
            if "publish" not in vector:
                continue
            blueprint.publish(channel=channel, **vector["publish"])
            count += 1
    print(f"published {count}", flush=True)


if __name__ == "__main__":
    redis_url, channel, vectors_path = sys.argv[1:4]
    app = Flask(__name__)
    app.config["REDIS_URL"] = redis_url
    publish_vectors(sse, app, channel, vectors_path)
