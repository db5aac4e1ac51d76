"""Credentials files: how provisioning hands a principal its Kafka credentials.

A file holds one principal's bootstrap address, username and password as JSON, mode
0600, written atomically. ``LIAISON_KAFKA_CREDENTIALS=<file>`` makes every ``liaison``
command connect as that principal.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from bus.errors import ConfigError
from bus.kafka import KafkaConnection

__all__ = ["CredentialsFile", "connection_from_file", "save_credentials", "write_private"]


class CredentialsFile(BaseModel):
    """The file's content."""

    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: str
    username: str
    password: SecretStr
    mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    security_protocol: Literal["SASL_PLAINTEXT", "SASL_SSL"] = "SASL_PLAINTEXT"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically (no one sees a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        staged.replace(path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def save_credentials(directory: Path, principal: str, bootstrap: str, password: str) -> Path:
    """``<directory>/<principal>.json``, mode 0600."""
    path = directory / f"{principal}.json"
    content = {
        "bootstrap_servers": bootstrap,
        "username": principal,
        "password": password,
        "mechanism": "SCRAM-SHA-512",
        "security_protocol": "SASL_PLAINTEXT",
    }
    write_private(path, json.dumps(content))
    return path


def connection_from_file(path: Path) -> KafkaConnection:
    """The connection a credentials file describes; :class:`ConfigError` names what is wrong."""
    try:
        loaded = CredentialsFile.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read credentials file {path}: {exc.strerror}") from exc
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "file" for e in exc.errors())
        raise ConfigError(
            f"credentials file {path} is not valid ({fields}); write it with provisioning"
        ) from exc
    return KafkaConnection(
        bootstrap_servers=loaded.bootstrap_servers,
        username=loaded.username,
        password=loaded.password,
        mechanism=loaded.mechanism,
        security_protocol=loaded.security_protocol,
    )
