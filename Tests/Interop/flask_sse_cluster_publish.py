"""Publish every golden vector's sse.publish(...) call with the real Flask-SSE, through
redis-py's RedisCluster (Flask-SSE's documented way to change its Redis client: override the
blueprint's `redis` property). RedisCluster sends classic PUBLISH to one node of the cluster.

Usage: flask_sse_cluster_publish.py SEED_URL CHANNEL VECTORS_JSONL
  SEED_URL: redis://[:password@]host:port of one cluster node.
"""
import sys

from flask import Flask
from flask_sse import ServerSentEventsBlueprint
from redis.cluster import RedisCluster

from flask_sse_publish import publish_vectors


class ClusterSSE(ServerSentEventsBlueprint):
    """Flask-SSE's blueprint with a Redis Cluster client."""

    _client = None

    @property
    def redis(self):
        if ClusterSSE._client is None:
            ClusterSSE._client = RedisCluster.from_url(self.app_url)
        return ClusterSSE._client


seed_url, channel, vectors_path = sys.argv[1:4]
sse = ClusterSSE("sse", __name__)
sse.app_url = seed_url
app = Flask(__name__)
app.register_blueprint(sse, url_prefix="/stream")
publish_vectors(sse, app, channel, vectors_path)
