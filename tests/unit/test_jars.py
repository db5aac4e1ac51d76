"""bus.broker._jars: the POM, the cache location, and how kafka_libs uses Maven.

Maven is never run here. A small shell script named ``mvn`` put first on PATH
stands in for it. It is a stand-in for the build tool, not for Kafka: it writes
the files (or the failure) that ``mvn dependency:copy-dependencies`` would.
"""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bus.broker import KAFKA_VERSION, cache_root, kafka_libs
from bus.broker._jars import LOG4J_VERSION, render_pom
from bus.errors import JarResolutionError

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
FAKE_VERSION = "9.9.9"


def _write_script(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("LIAISON_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def no_mvn_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def _put_fake_mvn_first_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    fake_bin = tmp_path / "fake-bin"
    _write_script(fake_bin, "mvn", body)
    # The system PATH stays behind it so the script can run mkdir and cp.
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}")


# -- render_pom ---------------------------------------------------------------------------


def _pom(kafka_version: str, log4j_version: str) -> ET.Element:
    # The text is render_pom's own output, not untrusted input.
    return ET.fromstring(render_pom(kafka_version, log4j_version))  # noqa: S314


def _dependency(pom: ET.Element, artifact: str) -> ET.Element:
    for dep in pom.iterfind("m:dependencies/m:dependency", _POM_NS):
        if dep.findtext("m:artifactId", namespaces=_POM_NS) == artifact:
            return dep
    raise AssertionError(f"no dependency on {artifact}")


def test_pom_pins_the_kafka_broker_artifact_to_the_requested_version() -> None:
    dep = _dependency(_pom("4.2.0", "2.24.3"), "kafka_2.13")
    assert dep.findtext("m:groupId", namespaces=_POM_NS) == "org.apache.kafka"
    assert dep.findtext("m:version", namespaces=_POM_NS) == "4.2.0"


def test_pom_pins_the_log4j_slf4j_binding_to_the_requested_version() -> None:
    dep = _dependency(_pom("4.2.0", "2.24.3"), "log4j-slf4j-impl")
    assert dep.findtext("m:groupId", namespaces=_POM_NS) == "org.apache.logging.log4j"
    assert dep.findtext("m:version", namespaces=_POM_NS) == "2.24.3"
    assert dep.findtext("m:scope", namespaces=_POM_NS) == "runtime"


def test_pom_pins_maven_dependency_plugin_3() -> None:
    plugins = _pom(KAFKA_VERSION, LOG4J_VERSION).findall("m:build/m:plugins/m:plugin", _POM_NS)
    versions = {
        p.findtext("m:artifactId", namespaces=_POM_NS): p.findtext("m:version", namespaces=_POM_NS)
        for p in plugins
    }
    version = versions["maven-dependency-plugin"]
    assert version is not None
    assert version.split(".")[0] == "3"


def test_pom_has_exactly_two_dependencies() -> None:
    deps = _pom(KAFKA_VERSION, LOG4J_VERSION).findall("m:dependencies/m:dependency", _POM_NS)
    assert [d.findtext("m:artifactId", namespaces=_POM_NS) for d in deps] == [
        "kafka_2.13",
        "log4j-slf4j-impl",
    ]


# -- cache_root -----------------------------------------------------------------------------


def test_cache_root_is_liaison_cache_dir_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIAISON_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "explicit"


def test_cache_root_falls_back_to_xdg_cache_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIAISON_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "liaison"


def test_cache_root_ignores_an_empty_liaison_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIAISON_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "liaison"


def test_cache_root_defaults_to_dot_cache_in_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIAISON_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "liaison"


# -- kafka_libs -----------------------------------------------------------------------------


@pytest.mark.usefixtures("no_mvn_on_path")
def test_kafka_libs_returns_a_complete_cache_without_running_mvn(cache_dir: Path) -> None:
    libs = cache_dir / "kafka" / KAFKA_VERSION / "libs"
    libs.mkdir(parents=True)
    (libs / ".complete").write_text("kafka_2.13-x.jar\n")
    said: list[str] = []
    assert kafka_libs(progress=said.append) == libs
    assert said == []


@pytest.mark.usefixtures("no_mvn_on_path")
def test_kafka_libs_without_mvn_raises_jar_resolution_error_naming_maven(
    cache_dir: Path,
) -> None:
    with pytest.raises(JarResolutionError) as caught:
        kafka_libs(FAKE_VERSION)
    message = str(caught.value)
    assert "`mvn` is not on PATH" in message
    assert "Install Maven" in message
    assert "apt-get install maven" in message


@pytest.mark.usefixtures("no_mvn_on_path")
def test_kafka_libs_ignores_a_cache_without_the_complete_marker(cache_dir: Path) -> None:
    # A half-filled directory is not trusted: resolution is attempted (and here fails).
    libs = cache_dir / "kafka" / FAKE_VERSION / "libs"
    libs.mkdir(parents=True)
    (libs / f"kafka_2.13-{FAKE_VERSION}.jar").write_text("")
    with pytest.raises(JarResolutionError, match="not on PATH"):
        kafka_libs(FAKE_VERSION)


_FAILING_MVN = """\
i=1
while [ "$i" -le 40 ]; do
  echo "mvn line $i"
  i=$((i + 1))
done
echo "[ERROR] Could not resolve org.apache.kafka:kafka_2.13" >&2
exit 1
"""


def test_kafka_libs_failure_reports_the_exit_code_and_last_lines_of_mvn_output(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put_fake_mvn_first_on_path(tmp_path, monkeypatch, _FAILING_MVN)
    with pytest.raises(JarResolutionError) as caught:
        kafka_libs(FAKE_VERSION)
    message = str(caught.value)
    lines = message.splitlines()
    assert f"org.apache.kafka:kafka_2.13:{FAKE_VERSION}" in lines[0]
    assert "exit code 1" in lines[0]
    assert lines[-1] == "[ERROR] Could not resolve org.apache.kafka:kafka_2.13"
    assert "mvn line 40" in lines
    # 30 lines in all: the error line and mvn lines 12 to 40.
    assert "mvn line 12" in lines
    assert "mvn line 11" not in lines
    assert caught.value.retriable is True


def test_kafka_libs_failure_leaves_no_cache_behind(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put_fake_mvn_first_on_path(tmp_path, monkeypatch, _FAILING_MVN)
    with pytest.raises(JarResolutionError):
        kafka_libs(FAKE_VERSION)
    root = cache_dir / "kafka" / FAKE_VERSION
    assert not (root / "libs").exists()
    assert list(root.glob("resolve-*")) == []


def test_kafka_libs_fails_when_mvn_succeeds_without_the_kafka_jar(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put_fake_mvn_first_on_path(tmp_path, monkeypatch, "exit 0\n")
    with pytest.raises(JarResolutionError) as caught:
        kafka_libs(FAKE_VERSION)
    assert "exit code 0" in str(caught.value)
    assert str(caught.value).endswith("(mvn printed nothing)")


_COPYING_MVN = """\
printf '%s\\n' "$@" > "$FAKE_MVN_ARGS"
prev=""
for arg in "$@"; do
  case "$arg" in
    -DoutputDirectory=*) out="${arg#-DoutputDirectory=}" ;;
  esac
  if [ "$prev" = "-f" ]; then cp "$arg" "$FAKE_MVN_POM"; fi
  prev="$arg"
done
mkdir -p "$out"
: > "$out/kafka_2.13-9.9.9.jar"
: > "$out/kafka-clients-9.9.9.jar"
"""


@pytest.fixture
def copying_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A stand-in ``mvn`` that "copies" two jars; returns where it records args and POM."""
    args, pom = tmp_path / "mvn-args.txt", tmp_path / "mvn-pom.xml"
    monkeypatch.setenv("FAKE_MVN_ARGS", str(args))
    monkeypatch.setenv("FAKE_MVN_POM", str(pom))
    _put_fake_mvn_first_on_path(tmp_path, monkeypatch, _COPYING_MVN)
    return args, pom


def test_kafka_libs_resolves_into_the_versioned_cache_and_marks_it_complete(
    cache_dir: Path, copying_mvn: tuple[Path, Path]
) -> None:
    said: list[str] = []
    libs = kafka_libs(FAKE_VERSION, progress=said.append)
    assert libs == cache_dir / "kafka" / FAKE_VERSION / "libs"
    assert sorted(p.name for p in libs.glob("*.jar")) == [
        "kafka-clients-9.9.9.jar",
        "kafka_2.13-9.9.9.jar",
    ]
    assert (libs / ".complete").read_text() == "kafka-clients-9.9.9.jar\nkafka_2.13-9.9.9.jar\n"
    assert list(libs.parent.glob("resolve-*")) == []
    assert len(said) == 2
    assert said[0].startswith(f"resolving Apache Kafka {FAKE_VERSION} jars")
    assert said[1].startswith("resolved 2 jars")


def test_kafka_libs_asks_mvn_for_the_runtime_closure_of_the_rendered_pom(
    cache_dir: Path, copying_mvn: tuple[Path, Path]
) -> None:
    args_file, pom_file = copying_mvn
    kafka_libs(FAKE_VERSION, log4j_version="2.99.0")
    args = args_file.read_text().splitlines()
    assert "dependency:copy-dependencies" in args
    assert "-DincludeScope=runtime" in args
    assert "-B" in args  # batch mode: no interactive prompts, no progress bars
    assert pom_file.read_text() == render_pom(FAKE_VERSION, "2.99.0")


def test_kafka_libs_replaces_an_incomplete_libs_directory(
    cache_dir: Path, copying_mvn: tuple[Path, Path]
) -> None:
    stale = cache_dir / "kafka" / FAKE_VERSION / "libs"
    stale.mkdir(parents=True)
    (stale / "stale-0.1.jar").write_text("")
    libs = kafka_libs(FAKE_VERSION)
    assert not (libs / "stale-0.1.jar").exists()
    assert (libs / f"kafka_2.13-{FAKE_VERSION}.jar").exists()


def test_kafka_libs_second_call_reuses_the_cache_without_mvn(
    cache_dir: Path,
    copying_mvn: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = kafka_libs(FAKE_VERSION)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert kafka_libs(FAKE_VERSION) == first
