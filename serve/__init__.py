"""Confide's data plane: the Ray Serve application (the mTLS gateway, the transcriber and
the dialogue model) and, in serve/core, what every process shares."""
