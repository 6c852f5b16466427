"""The real Flask-SSE stream server, for interop tests.

Usage: flask_sse_app.py REDIS_URL PORT
"""
import sys

from flask import Flask
from flask_sse import sse

redis_url, port = sys.argv[1], int(sys.argv[2])
app = Flask(__name__)
app.config["REDIS_URL"] = redis_url
app.register_blueprint(sse, url_prefix="/stream")

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=port, threaded=True, use_reloader=False)
