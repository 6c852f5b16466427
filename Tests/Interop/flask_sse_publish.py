"""Publish every golden vector's sse.publish(...) call with the real Flask-SSE.

Usage: flask_sse_publish.py REDIS_URL CHANNEL VECTORS_JSONL
"""
import json
import sys

from flask import Flask
from flask_sse import sse

redis_url, channel, vectors_path = sys.argv[1:4]
app = Flask(__name__)
app.config["REDIS_URL"] = redis_url

count = 0
with app.app_context(), open(vectors_path, encoding="utf-8") as vectors:
    for line in vectors:
        vector = json.loads(line)
        if "publish" not in vector:
            continue
        sse.publish(channel=channel, **vector["publish"])
        count += 1
print(f"published {count}", flush=True)
