"""Resolve Apache Kafka's broker jars from Maven Central, once per version.

Debian ships no Kafka broker and the Apache download mirrors are out of reach,
but Maven Central has every jar. ``mvn dependency:copy-dependencies`` on a
throw-away POM copies the broker's runtime closure into a cache directory keyed
by version, which later runs reuse. A file lock keeps two processes (say, two
pytest sessions) from resolving into the same directory at once, and the
directory is renamed into place only when complete, so a killed ``mvn`` never
leaves a half-filled cache behind.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bus.errors import JarResolutionError

__all__ = ["KAFKA_VERSION", "LOG4J_VERSION", "cache_root", "kafka_libs", "render_pom"]

KAFKA_VERSION = "4.3.1"
"""The broker version Liaison is tested against."""

LOG4J_VERSION = "2.25.4"
"""log4j-core's version in Kafka 4.3.1's POM; the SLF4J binding must match it."""

_DEPENDENCY_PLUGIN_VERSION = "3.8.1"
"""Pinned: Maven 3.8.7 otherwise picks the 2.8 plugin."""

_MVN_TAIL_LINES = 30
_MVN_TIMEOUT_S = 900.0
_COMPLETE_MARKER = ".complete"


def cache_root() -> Path:
    """Where Liaison caches downloads: ``$LIAISON_CACHE_DIR``, else the XDG cache."""
    explicit = os.environ.get("LIAISON_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "liaison"


def render_pom(kafka_version: str, log4j_version: str) -> str:
    """A POM whose runtime closure is exactly what the broker needs."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.liaison</groupId>
  <artifactId>kafka-broker-runtime</artifactId>
  <version>{kafka_version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka_version}</version>
    </dependency>
    <!-- Kafka's own SLF4J binding is releaseOnly, so the POM lacks it: without it
         the broker runs but logs nothing. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j_version}</version>
      <scope>runtime</scope>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>{_DEPENDENCY_PLUGIN_VERSION}</version>
      </plugin>
    </plugins>
  </build>
</project>
"""


def _find_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarResolutionError(
            "`mvn` is not on PATH; it fetches the Kafka broker jars from Maven Central. "
            "Install Maven (Debian: `apt-get install maven`) and try again"
        )
    return mvn


def kafka_libs(
    kafka_version: str = KAFKA_VERSION,
    *,
    log4j_version: str = LOG4J_VERSION,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Return a directory holding every jar the broker needs, resolving it if absent.

    Raises :class:`JarResolutionError` with the last lines of Maven's output when
    resolution fails.
    """
    say = progress or (lambda _msg: None)
    root = cache_root() / "kafka" / kafka_version
    libs = root / "libs"
    if (libs / _COMPLETE_MARKER).is_file():
        return libs
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (libs / _COMPLETE_MARKER).is_file():  # another process finished meanwhile
            return libs
        mvn = _find_mvn()
        say(f"resolving Apache Kafka {kafka_version} jars from Maven Central into {libs}")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=root, prefix="resolve-") as tmp:
            work = Path(tmp)
            (work / "pom.xml").write_text(render_pom(kafka_version, log4j_version))
            staged = work / "libs"
            cmd = [
                mvn,
                "-q",
                "-B",
                "-f",
                str(work / "pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staged}",
                "-DincludeScope=runtime",
            ]
            try:
                result = subprocess.run(
                    cmd, capture_output=True, text=True, check=False, timeout=_MVN_TIMEOUT_S
                )
            except subprocess.TimeoutExpired as exc:
                raise JarResolutionError(
                    f"`mvn` did not finish resolving Kafka {kafka_version} within "
                    f"{_MVN_TIMEOUT_S:.0f}s; check the network to Maven Central and retry"
                ) from exc
            if result.returncode != 0 or not any(staged.glob(f"kafka_2.13-{kafka_version}.jar")):
                output = (result.stdout + result.stderr).strip().splitlines()
                tail = "\n".join(output[-_MVN_TAIL_LINES:]) or "(mvn printed nothing)"
                raise JarResolutionError(
                    f"`mvn dependency:copy-dependencies` for org.apache.kafka:kafka_2.13:"
                    f"{kafka_version} failed with exit code {result.returncode}. "
                    f"Check that Maven Central is reachable and the version exists. "
                    f"Last lines of its output:\n{tail}"
                )
            jars = sorted(p.name for p in staged.glob("*.jar"))
            (staged / _COMPLETE_MARKER).write_text("\n".join(jars) + "\n")
            if libs.exists():
                shutil.rmtree(libs)
            staged.rename(libs)
        say(f"resolved {len(jars)} jars in {time.monotonic() - started:.1f}s")
    return libs
