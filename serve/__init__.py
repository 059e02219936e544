"""Confide's Ray Serve application: the mTLS gateway and the transcriber."""
